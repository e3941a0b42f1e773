package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/postgres"
)

// The conformance suite: every test here runs against both drivers.
// PostgreSQL runs when MADOGUCHI_TEST_POSTGRES is set (a DSN, or "1" for
// postgres://postgres@127.0.0.1:5432/postgres) and always when CI is set.

var (
	pgOnce    sync.Once
	pgBaseDSN string
	pgErr     error
	schemaN   atomic.Int64
	// The database the suite created, dropped when it ends.
	pgAdminDSN, pgDBName string
)

// TestMain drops the suite's PostgreSQL database after the run, so that
// runs do not leave one each on the server.
func TestMain(m *testing.M) {
	code := m.Run()
	if pgDBName != "" {
		if db, err := sql.Open("pgx", pgAdminDSN); err == nil {
			if _, err := db.Exec("DROP DATABASE IF EXISTS " + pgDBName + " WITH (FORCE)"); err != nil {
				fmt.Fprintln(os.Stderr, "store tests: dropping", pgDBName+":", err)
			}
			_ = db.Close()
		}
	}
	os.Exit(code)
}

// PostgresDSN returns the DSN of a fresh database for this test run, or
// skips the test when PostgreSQL is not asked for.
func postgresDSN(t testing.TB) string {
	t.Helper()
	env := os.Getenv("MADOGUCHI_TEST_POSTGRES")
	if env == "" && os.Getenv("CI") == "" {
		t.Skip("PostgreSQL: set MADOGUCHI_TEST_POSTGRES=1 (CI always runs it)")
	}
	pgOnce.Do(func() {
		admin := env
		if admin == "" || admin == "1" {
			admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
		}
		db, err := sql.Open("pgx", admin)
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		name := fmt.Sprintf("madoguchi_test_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
		if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
			pgErr = err
			return
		}
		pgAdminDSN, pgDBName = admin, name
		pgBaseDSN = regexp.MustCompile(`/[^/?]*(\?|$)`).ReplaceAllString(strings.TrimPrefix(admin, ""), "/"+name+"$1")
		if !strings.Contains(admin, "/postgres") {
			pgBaseDSN = admin
		}
	})
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	// A scratch schema per test keeps tests isolated and parallel.
	schema := fmt.Sprintf("t%d", schemaN.Add(1))
	db, err := sql.Open("pgx", pgBaseDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(pgBaseDSN, "?") {
		sep = "&"
	}
	return pgBaseDSN + sep + "search_path=" + schema
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// eachDriver runs fn as a subtest against stores.SQLite and PostgreSQL.
func eachDriver(t *testing.T, fn func(t *testing.T, s store.Store, c *clock)) {
	for _, drv := range []string{stores.SQLite, stores.Postgres} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
			s := openTest(t, drv, c)
			fn(t, s, c)
		})
	}
}

func openTest(t testing.TB, drv string, c *clock) store.Store {
	t.Helper()
	return openAt(t, drv, newDSN(t, drv), c)
}

// newDSN is a fresh database for drv.
func newDSN(t testing.TB, drv string) string {
	if drv == stores.Postgres {
		return postgresDSN(t)
	}
	return filepath.Join(t.TempDir(), "m.db")
}

// openAt opens the store of drv at dsn, closed when the test ends.
func openAt(t testing.TB, drv, dsn string, c *clock) store.Store {
	t.Helper()
	s, err := stores.Open(context.Background(), drv, dsn, store.Options{Now: c.Now, TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatalf("open %s: %v", drv, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func spool(t testing.TB, s store.Store, raw string) int64 {
	t.Helper()
	id, err := s.Spool(context.Background(), &store.Message{Channel: store.ChannelImport, MailFrom: "a@example.net", RcptTo: []string{"csirt@example.org"}, Peer: "test", Raw: []byte(raw)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func filing(id int64, mid, sender string) *store.Filing {
	return &store.Filing{SpoolID: id, MessageID: mid, Sender: sender, Subject: "s", ReportJSON: []byte(`{"k":1}`),
		Indicators: []store.Indicator{{"ipv4", "198.51.100.1"}}, Ack: &store.AckRequest{Recipient: sender, Domain: "csirt.example.org"}}
}

var ticketRE = regexp.MustCompile(`^CSIRT#2026-\d{6}$`)

func TestSpoolKeepsBytesExactly(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		raw := "From: x\r\nSubject: \xff\x00bin\r\n\r\nbody\n\x00\x01"
		id := spool(t, s, raw)
		m, err := s.GetMessage(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Raw) != raw || m.Size != int64(len(raw)) || len(m.SHA256) != 64 || m.RcptTo[0] != "csirt@example.org" {
			t.Fatalf("spool round trip changed the message: %+v", m)
		}
		if _, err := s.GetMessage(context.Background(), id+100); err != store.ErrNotFound {
			t.Fatalf("missing row: %v", err)
		}
	})
}

func TestFileNewDuplicateReprocess(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a := spool(t, s, "m1")
		r1, err := s.File(ctx, filing(a, "<one@x>", "r@example.net"))
		if err != nil {
			t.Fatal(err)
		}
		if r1.Outcome != store.OutcomeNew || r1.Ticket != "CSIRT#2026-000001" || r1.AckID == 0 {
			t.Fatalf("first filing: %+v", r1)
		}
		// Same Message-ID, other bytes: duplicate, nothing new, no ack.
		b := spool(t, s, "m1 resent")
		r2, err := s.File(ctx, filing(b, "<ONE@x>", "r@example.net"))
		if err != nil {
			t.Fatal(err)
		}
		if r2.Outcome != store.OutcomeDuplicate || r2.Ticket != r1.Ticket || r2.AckID != 0 {
			t.Fatalf("duplicate: %+v", r2)
		}
		// The same spool row again (crash re-run, reprocess): same incident.
		r3, err := s.File(ctx, filing(a, "<one@x>", "r@example.net"))
		if err != nil {
			t.Fatal(err)
		}
		if r3.Outcome != store.OutcomeReprocessed || r3.Ticket != r1.Ticket || r3.ReportID != r1.ReportID {
			t.Fatalf("re-run: %+v", r3)
		}
		list, err := s.ListIncidents(ctx, store.Filter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("want 1 incident, got %d (%v)", len(list), err)
		}
		d, err := s.GetIncident(ctx, r1.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		kinds := []string{}
		for _, e := range d.Events {
			kinds = append(kinds, e.Kind)
		}
		if strings.Join(kinds, ",") != "created,duplicate,reprocessed" {
			t.Fatalf("events %v", kinds)
		}
		if len(d.ReportList) != 1 || len(d.ReportList[0].Indicators) != 1 || len(d.Outbox) != 1 {
			t.Fatalf("detail: %+v", d)
		}
		// No Message-ID: the raw SHA-256 is the key.
		n1 := spool(t, s, "no mid")
		n2 := spool(t, s, "no mid")
		rn1, _ := s.File(ctx, filing(n1, "", "q@example.net"))
		rn2, _ := s.File(ctx, filing(n2, "", "q@example.net"))
		if rn1.Outcome != store.OutcomeNew || rn2.Outcome != store.OutcomeDuplicate {
			t.Fatalf("sha dedup: %v %v", rn1.Outcome, rn2.Outcome)
		}
		if got, _ := s.ListIncidents(ctx, store.Filter{Indicator: "198.51.100.1"}); len(got) != 2 {
			t.Fatalf("indicator search: %d", len(got))
		}
	})
}

func TestThreading(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		if err := s.ImportIncident(ctx, "CSIRT#2026-000123", "Phishing", "Erik@Northwind.example.net", c.Now()); err != nil {
			t.Fatal(err)
		}
		// The requester, by tag: attached, no ack.
		f := filing(spool(t, s, "a"), "<a@x>", "erik@northwind.example.net")
		f.Ticket = "CSIRT#2026-000123"
		r, err := s.File(ctx, f)
		if err != nil || r.Outcome != store.OutcomeAttached || r.Ticket != "CSIRT#2026-000123" || r.AckID != 0 {
			t.Fatalf("requester by tag: %+v %v", r, err)
		}
		// A stranger with the tag only: filed separately.
		f = filing(spool(t, s, "b"), "<b@x>", "mallory@evil.example")
		f.Ticket = "CSIRT#2026-000123"
		r, err = s.File(ctx, f)
		if err != nil || r.Outcome != store.OutcomeNew || r.Ticket != "CSIRT#2026-000124" {
			t.Fatalf("stranger: %+v %v", r, err)
		}
		// A stranger that is a valid signer: attached.
		f = filing(spool(t, s, "c"), "<c@x>", "partner@cert.example")
		f.Ticket, f.Trusted = "CSIRT#2026-000123", true
		if r, _ = s.File(ctx, f); r.Outcome != store.OutcomeAttached {
			t.Fatalf("trusted: %+v", r)
		}
		// A reply to our acknowledgement by References only.
		d, _ := s.GetIncident(ctx, "CSIRT#2026-000124")
		f = filing(spool(t, s, "d"), "<d@x>", "mallory@evil.example")
		f.References = []string{"<unknown@x>", d.Outbox[0].MessageID}
		if r, _ = s.File(ctx, f); r.Outcome != store.OutcomeAttached || r.Ticket != "CSIRT#2026-000124" {
			t.Fatalf("by references: %+v", r)
		}
		// Unknown references: new.
		f = filing(spool(t, s, "e"), "<e@x>", "x@y.example")
		f.References = []string{"<never-seen@x>"}
		if r, _ = s.File(ctx, f); r.Outcome != store.OutcomeNew || r.Ticket != "CSIRT#2026-000125" {
			t.Fatalf("unknown refs: %+v", r)
		}
		// Not a report of its own (a bounce, the team's From unproven):
		// with the tag alone it is noted on the ticket, never filed as
		// an incident; by the Message-ID of what we sent it joins.
		f = filing(spool(t, s, "f"), "<f@x>", "csirt@example.org")
		f.Ticket, f.AttachOnly = "CSIRT#2026-000123", true
		if r, err = s.File(ctx, f); err != nil || r.Outcome != store.OutcomeNoted || r.IncidentID != 0 || r.AckID != 0 {
			t.Fatalf("attach-only stranger: %+v %v", r, err)
		}
		inc, _ := s.GetIncident(ctx, "CSIRT#2026-000123")
		if ev := inc.Events[len(inc.Events)-1]; ev.Kind != "tag-from-stranger" || !strings.Contains(ev.Detail, "not attached") {
			t.Fatalf("event on the named ticket: %+v", ev)
		}
		f = filing(spool(t, s, "g"), "<g@x>", "mailer-daemon@mx.example")
		f.Ticket, f.AttachOnly, f.References = "CSIRT#2026-000124", true, []string{d.Outbox[0].MessageID}
		if r, _ = s.File(ctx, f); r.Outcome != store.OutcomeAttached || r.Ticket != "CSIRT#2026-000124" {
			t.Fatalf("attach-only by our store.Message-ID: %+v", r)
		}
		var n int
		if err := rawDB(s).QueryRow(`SELECT COUNT(*) FROM incidents`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d incidents, want 3 (%v)", n, err)
		}
	})
}

func TestClaimLeaseFailQuarantine(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a := spool(t, s, "a")
		b := spool(t, s, "b")
		cl, err := s.Claim(ctx, "w1", 10, time.Minute, 3)
		if err != nil || len(cl) != 2 || cl[0].SpoolID != a || cl[1].SpoolID != b || cl[0].Attempts != 1 {
			t.Fatalf("claim: %+v %v", cl, err)
		}
		if again, _ := s.Claim(ctx, "w2", 10, time.Minute, 3); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		// The worker dies: after the lease, another worker gets them,
		// one at a time (either may be what killed it).
		c.Add(2 * time.Minute)
		cl, _ = s.Claim(ctx, "w2", 10, time.Minute, 3)
		if len(cl) != 1 || cl[0].SpoolID != a || cl[0].Attempts != 2 {
			t.Fatalf("after lease: %+v", cl)
		}
		cl, _ = s.Claim(ctx, "w2", 10, time.Minute, 3)
		if len(cl) != 1 || cl[0].SpoolID != b || cl[0].Attempts != 2 {
			t.Fatalf("after lease, the second: %+v", cl)
		}
		// b fails: back-off, then quarantine at the last attempt.
		if q, err := s.Fail(ctx, b, "parse-error", "boom", 3); q || err != nil {
			t.Fatalf("fail 2: %v %v", q, err)
		}
		if _, err := s.File(ctx, filing(a, "<a@x>", "r@x.example")); err != nil {
			t.Fatal(err)
		}
		if cl, _ = s.Claim(ctx, "w3", 10, time.Minute, 3); len(cl) != 0 {
			t.Fatalf("claimed during back-off: %+v", cl)
		}
		c.Add(time.Hour)
		cl, _ = s.Claim(ctx, "w3", 10, time.Minute, 3)
		if len(cl) != 1 || cl[0].SpoolID != b || cl[0].Attempts != 3 {
			t.Fatalf("retry: %+v", cl)
		}
		if q, _ := s.Fail(ctx, b, "parse-error", "boom", 3); !q {
			t.Fatal("not quarantined at the last attempt")
		}
		qs, _ := s.ListQueue(ctx, store.StateQuarantined, 10)
		if len(qs) != 1 || qs[0].Reason != "parse-error" {
			t.Fatalf("quarantine list: %+v", qs)
		}
		counts, _ := s.QueueCounts(ctx)
		if counts[store.StateDone] != 1 || counts[store.StateQuarantined] != 1 {
			t.Fatalf("counts %v", counts)
		}
		// reprocess --quarantined
		if ids, err := s.Requeue(ctx, 0, true, time.Time{}, "", 0); len(ids) != 1 || err != nil {
			t.Fatalf("requeue: %v %v", ids, err)
		}
		if cl, _ = s.Claim(ctx, "w4", 10, time.Minute, 3); len(cl) != 1 || cl[0].Attempts != 1 {
			t.Fatalf("after requeue: %+v", cl)
		}
		if _, err := s.Requeue(ctx, 9999, false, time.Time{}, "", 0); err != store.ErrNotFound {
			t.Fatalf("requeue missing: %v", err)
		}
		// since: everything
		if ids, _ := s.Requeue(ctx, 0, false, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "", 0); len(ids) != 1 {
			t.Fatalf("requeue since: %v", ids)
		}
		// For a worker: claimed by it, invisible to other claims.
		ids, err := s.Requeue(ctx, 0, false, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "reprocess/1", time.Minute)
		if len(ids) != 1 || err != nil { // the other is w4's, claimed
			t.Fatalf("requeue for a worker: %v %v", ids, err)
		}
		if cl, _ = s.Claim(ctx, "w5", 10, time.Minute, 3); len(cl) != 0 {
			t.Fatalf("another worker claimed rows requeued for reprocess: %+v", cl)
		}
	})
}

func TestClaimCrashedRepeatedlyIsQuarantined(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		spool(t, s, "poison")
		for i := 0; i < 2; i++ {
			if cl, _ := s.Claim(ctx, "w", 1, time.Second, 2); len(cl) != 1 {
				t.Fatalf("attempt %d: %+v", i, cl)
			}
			c.Add(time.Minute)
		}
		if cl, _ := s.Claim(ctx, "w", 1, time.Second, 2); len(cl) != 0 {
			t.Fatalf("third claim: %+v", cl)
		}
		qs, _ := s.ListQueue(ctx, store.StateQuarantined, 10)
		if len(qs) != 1 || qs[0].Reason != "crashed" {
			t.Fatalf("%+v", qs)
		}
	})
}

func TestConcurrentWorkersNeverShareOrCollide(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		const n = 60
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < n/8+1; i++ {
					if _, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("w%d-%d", w, i))}); err != nil {
						t.Error(err)
					}
				}
			}(w)
		}
		wg.Wait()
		var mu sync.Mutex
		seen := map[int64]bool{}
		tickets := map[string]bool{}
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for {
					cl, err := s.Claim(ctx, fmt.Sprint("w", w), 3, time.Minute, 5)
					if err != nil {
						t.Error(err)
						return
					}
					if len(cl) == 0 {
						return
					}
					for _, x := range cl {
						r, err := s.File(ctx, filing(x.SpoolID, fmt.Sprintf("<%d@x>", x.SpoolID), "r@x.example"))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if seen[x.SpoolID] || tickets[r.Ticket] {
							t.Errorf("spool %d or ticket %s twice", x.SpoolID, r.Ticket)
						}
						seen[x.SpoolID], tickets[r.Ticket] = true, true
						mu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
		if len(seen) != 8*(n/8+1) {
			t.Fatalf("processed %d", len(seen))
		}
		for tk := range tickets {
			if !ticketRE.MatchString(tk) {
				t.Fatalf("ticket %q", tk)
			}
		}
	})
}

// TestClaimTakesTheOldestFirst: a claim takes the oldest rows of both kinds
// it may take (ready, and leased with the lease run out) in spool order,
// passes over rows in back-off without stopping there, and never takes more
// than n, whichever index each kind is found on.
func TestClaimTakesTheOldestFirst(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		var ids []int64
		for i := 0; i < 8; i++ {
			ids = append(ids, spool(t, s, fmt.Sprint("m", i)))
		}
		// Rows 0 and 1 are leased to a worker that dies; row 2 fails and
		// waits (back-off).
		if cl, err := s.Claim(ctx, "dies", 2, time.Minute, 5); err != nil || len(cl) != 2 || cl[0].SpoolID != ids[0] || cl[1].SpoolID != ids[1] {
			t.Fatalf("first claim: %+v %v", cl, err)
		}
		if cl, err := s.Claim(ctx, "fails", 1, time.Hour, 5); err != nil || len(cl) != 1 || cl[0].SpoolID != ids[2] {
			t.Fatalf("second claim: %+v %v", cl, err)
		}
		c.Add(2 * time.Minute) // the dead worker's lease runs out
		if _, err := s.Fail(ctx, ids[2], "parse-error", "boom", 5); err != nil {
			t.Fatal(err)
		}
		got := func(cl []store.Claim) []int64 {
			var out []int64
			for _, x := range cl {
				out = append(out, x.SpoolID)
			}
			return out
		}
		// The rows whose lease ran out come alone, one at a time (one
		// of them may be what killed the worker); then the ready ones.
		for _, want := range [][]int64{{ids[0]}, {ids[1]}, {ids[3], ids[4], ids[5]}} {
			cl, err := s.Claim(ctx, "w", 3, time.Minute, 5)
			if err != nil || !slices.Equal(got(cl), want) {
				t.Fatalf("claim 3: got %v, want %v (%v)", got(cl), want, err)
			}
		}
		cl, err := s.Claim(ctx, "w", 10, time.Minute, 5)
		if want := ids[6:]; err != nil || !slices.Equal(got(cl), want) {
			t.Fatalf("claim the rest: got %v, want %v (%v)", got(cl), want, err)
		}
		c.Add(2 * time.Hour) // every lease and the back-off have run out
		cl, err = s.Claim(ctx, "w", 2, time.Minute, 5)
		if want := []int64{ids[0]}; err != nil || !slices.Equal(got(cl), want) {
			t.Fatalf("after every lease: got %v, want %v (%v)", got(cl), want, err)
		}
	})
}

// TestOutboxSkippedAll: several rows are marked skipped at once, each with
// its own reason, and the others are left as they were.
func TestOutboxSkippedAll(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			id := spool(t, s, fmt.Sprint("k", i))
			if _, err := s.File(ctx, filing(id, fmt.Sprintf("<k%d@x>", i), "r@x.example")); err != nil {
				t.Fatal(err)
			}
		}
		ob, err := s.ClaimOutbox(ctx, 10, time.Minute)
		if err != nil || len(ob) != 3 {
			t.Fatalf("%+v %v", ob, err)
		}
		if err := s.MarkOutboxSkippedAll(ctx, []store.OutboxSkip{{ob[0].ID, "first"}, {ob[2].ID, "third"}}); err != nil {
			t.Fatal(err)
		}
		want := map[int64][2]string{ob[0].ID: {store.OutboxSkipped, "first"}, ob[1].ID: {store.OutboxSending, ""}, ob[2].ID: {store.OutboxSkipped, "third"}}
		for id, w := range want {
			var st, reason string
			if err := rawDB(s).QueryRow(rebind(s, `SELECT state, last_error FROM outbox WHERE id = ?`), id).Scan(&st, &reason); err != nil {
				t.Fatal(err)
			}
			if st != w[0] || reason != w[1] {
				t.Errorf("row %d: %s %q, want %s %q", id, st, reason, w[0], w[1])
			}
		}
		if err := s.MarkOutboxSkippedAll(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOutboxClaimSentDead(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			id := spool(t, s, fmt.Sprint(i))
			if _, err := s.File(ctx, filing(id, fmt.Sprintf("<%d@x>", i), "r@x.example")); err != nil {
				t.Fatal(err)
			}
		}
		ob, err := s.ClaimOutbox(ctx, 10, time.Minute)
		if err != nil || len(ob) != 2 {
			t.Fatalf("%+v %v", ob, err)
		}
		if again, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatal("outbox claimed twice")
		}
		if err := s.MarkSent(ctx, ob[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkOutboxFailed(ctx, ob[1].ID, "550 no", true, 0); err != nil {
			t.Fatal(err)
		}
		counts, _ := s.OutboxCounts(ctx)
		if counts[store.OutboxSent] != 1 || counts[store.OutboxDead] != 1 {
			t.Fatalf("%v", counts)
		}
	})
}

func TestMigrationsIdempotentAndStatus(t *testing.T) {
	for _, drv := range []string{stores.SQLite, stores.Postgres} {
		t.Run(drv, func(t *testing.T) { migrationsIdempotent(t, drv) })
	}
}

func migrationsIdempotent(t *testing.T, drv string) {
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	dsn := newDSN(t, drv)
	s := openAt(t, drv, dsn, c)
	// Opening it again applies nothing and fails nothing.
	again := openAt(t, drv, dsn, c)
	{
		ctx := context.Background()
		v, err := again.SchemaVersion(ctx)
		if err != nil || v != s.LatestMigration() || v < 7 {
			t.Fatalf("version %d %v", v, err)
		}
		if err := s.UpdateIncident(ctx, "CSIRT#2026-999999", store.Change{Status: "open", Actor: "t"}); err != store.ErrNotFound {
			t.Fatalf("missing: %v", err)
		}
		f := filing(spool(t, s, "x"), "<x@x>", "r@x.example")
		r, _ := s.File(ctx, f)
		alice := "alice"
		if err := s.UpdateIncident(ctx, r.Ticket, store.Change{Status: "open", Assignee: &alice, Actor: "bob"}); err != nil {
			t.Fatal(err)
		}
		d, _ := s.GetIncident(ctx, r.Ticket)
		if d.Status != "open" || d.Assignee != "alice" || d.Events[len(d.Events)-1].Actor != "bob" {
			t.Fatalf("%+v", d)
		}
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	_, err := stores.Open(context.Background(), stores.Postgres, "postgres://nobody@127.0.0.1:1/x?connect_timeout=2", store.Options{})
	if err == nil || !strings.Contains(err.Error(), "unavailable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want one-line unavailable error, got %v", err)
	}
}

// TestIMAPStateAndLock: state advances with the spool in one transaction,
// and only one holder of a mailbox lock at a time, until it is released.
func TestIMAPStateAndLock(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		st, err := s.GetIMAPState(ctx, "csirt@imap/INBOX")
		if err != nil || st != (store.IMAPState{}) {
			t.Fatalf("fresh state: %+v %v", st, err)
		}
		id, err := s.SpoolIMAP(ctx, &store.Message{Channel: store.ChannelIMAP, Raw: []byte("Subject: x\r\n\r\nx")}, "csirt@imap/INBOX", store.IMAPState{UIDValidity: 7, LastUID: 3}, 3)
		if err != nil || id == 0 {
			t.Fatal(err)
		}
		if st, _ = s.GetIMAPState(ctx, "csirt@imap/INBOX"); st != (store.IMAPState{7, 3}) {
			t.Fatalf("after spool: %+v", st)
		}
		if err := s.SetIMAPState(ctx, "csirt@imap/INBOX", store.IMAPState{UIDValidity: 9}); err != nil {
			t.Fatal(err)
		}
		if st, _ = s.GetIMAPState(ctx, "csirt@imap/INBOX"); st != (store.IMAPState{9, 0}) {
			t.Fatalf("after reset: %+v", st)
		}
		release, ok, err := s.LockMailbox(ctx, "m1")
		if err != nil || !ok {
			t.Fatalf("first lock: %v %v", ok, err)
		}
		if _, ok2, err := s.LockMailbox(ctx, "m1"); err != nil || ok2 {
			t.Fatalf("second holder: %v %v", ok2, err)
		}
		if r, ok3, _ := s.LockMailbox(ctx, "m2"); !ok3 {
			t.Fatal("another mailbox is free")
		} else {
			r()
		}
		release()
		r, ok, err := s.LockMailbox(ctx, "m1")
		if err != nil || !ok {
			t.Fatalf("after release: %v %v", ok, err)
		}
		r()
	})
}

// TestFileBatchSameAsOneByOne: a batch files exactly what one-by-one
// filing would (a duplicate and a reply inside the batch see the earlier
// rows), tickets stay sequential, and a failing batch files nothing.
func TestFileBatchSameAsOneByOne(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a, b, d, e := spool(t, s, "a"), spool(t, s, "b"), spool(t, s, "d"), spool(t, s, "e")
		reply := filing(d, "<r@x.example>", "x@x.example")
		reply.References = []string{"<a@x.example>"}
		reply.Ack.FollowUp = true
		res, err := s.FileBatch(ctx, []*store.Filing{filing(a, "<a@x.example>", "x@x.example"), filing(b, "<a@x.example>", "y@x.example"), reply, filing(e, "<e@x.example>", "z@x.example")})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{store.OutcomeNew, store.OutcomeDuplicate, store.OutcomeAttached, store.OutcomeNew}
		for i, r := range res {
			if r.Outcome != want[i] {
				t.Fatalf("row %d: %s, want %s", i, r.Outcome, want[i])
			}
		}
		if res[0].Ticket != "CSIRT#2026-000001" || res[2].Ticket != res[0].Ticket || res[3].Ticket != "CSIRT#2026-000002" {
			t.Fatalf("tickets: %s %s %s", res[0].Ticket, res[2].Ticket, res[3].Ticket)
		}
		// Tickets are taken at the end of the batch: what is queued names
		// the final ticket, also for a row attached to an incident that the
		// same batch opened.
		det, err := s.GetIncident(ctx, res[0].Ticket)
		if err != nil {
			t.Fatal(err)
		}
		ob := det.Outbox
		kinds := map[string]string{}
		for _, o := range ob {
			kinds[o.Kind] = o.MessageID
		}
		if !strings.HasPrefix(kinds[store.OutboxAck], "<csirt-2026-000001.ack.") || !strings.HasPrefix(kinds[store.OutboxFollowUp], "<csirt-2026-000001.followup.") {
			t.Fatalf("outbox store.Message-IDs %v, want them to name csirt-2026-000001", kinds)
		}
		// A batch with a row that cannot be filed (no such spool row) files
		// nothing at all.
		f1, f2 := spool(t, s, "f1"), int64(99999)
		if _, err := s.FileBatch(ctx, []*store.Filing{filing(f1, "<f1@x.example>", "q@x.example"), filing(f2, "<f2@x.example>", "q@x.example")}); err == nil {
			t.Fatal("a batch with a missing spool row succeeded")
		}
		list, _ := s.ListIncidents(ctx, store.Filter{Limit: 100})
		if len(list) != 2 {
			t.Fatalf("%d incidents after a failed batch, want 2", len(list))
		}
		if r, err := s.File(ctx, filing(f1, "<f1@x.example>", "q@x.example")); err != nil || r.Ticket != "CSIRT#2026-000003" {
			t.Fatalf("after the failed batch: %+v %v (the counter must not have moved)", r, err)
		}
	})
}

// TestSpoolChunked: a message given as a Source is stored in chunks and
// read back byte for byte, with the SHA-256 and size of the whole, through
// Spool and through the group committer; a retried spool reads the source
// from its start again.
func TestSpoolChunked(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		big := make([]byte, 3*store.ChunkSize+12345)
		for i := range big {
			big[i] = byte(i*7 + i/store.ChunkSize)
		}
		m := &store.Message{Channel: store.ChannelSMTP, Source: bytes.NewReader(big)}
		id, err := s.Spool(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		gc := store.NewCommitter(s, 4)
		defer gc.Close()
		src := bytes.NewReader(big)
		_, _ = src.Seek(100, io.SeekStart) // a half-read source is read from its start
		id2, err := gc.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Source: src})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(big)
		for _, i := range []int64{id, id2} {
			got, err := s.GetMessage(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Raw, big) || got.Size != int64(len(big)) || got.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("spool %d: %d bytes, size %d, sha %s", i, len(got.Raw), got.Size, got.SHA256)
			}
		}
	})
}

// TestOutboxConcurrentClaimsNeverShare: several senders (as several
// daemons would) claiming at once never get the same row.
func TestOutboxConcurrentClaimsNeverShare(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		const n = 60
		for i := 0; i < n; i++ {
			id := spool(t, s, fmt.Sprint(i))
			if _, err := s.File(ctx, filing(id, fmt.Sprintf("<c%d@x>", i), fmt.Sprintf("r%d@x.example", i))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					rows, err := s.ClaimOutbox(ctx, 3, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if len(rows) == 0 {
						return
					}
					mu.Lock()
					for _, r := range rows {
						seen[r.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d rows claimed, want %d", len(seen), n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Fatalf("row %d claimed %d times", id, k)
			}
		}
	})
}

// TestSQLiteCommitsAreDurable: stores.SQLite's writer flushes the WAL inside every
// commit (synchronous=FULL), so a spool is on disk when it returns.
func TestSQLiteCommitsAreDurable(t *testing.T) {
	s := openTest(t, stores.SQLite, &clock{t: time.Now()})
	var mode int
	if err := rawDB(s).QueryRow(`PRAGMA synchronous`).Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("synchronous = %d (%v), want 2 (FULL)", mode, err)
	}
}

// RecentTo counts a correspondent's acknowledgements of the last hour that
// were sent or are being sent, below the ID asked about, and stops counting
// at the limit it is given.
func TestRecentToCountsUpToTheLimit(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		var acks []int64
		for i := range 5 {
			id := spool(t, s, fmt.Sprintf("m%d", i))
			res, err := s.File(ctx, filing(id, fmt.Sprintf("<m%d@x.example>", i), "busy@x.example"))
			if err != nil || res.AckID == 0 {
				t.Fatalf("file: %+v %v", res, err)
			}
			acks = append(acks, res.AckID)
		}
		for _, id := range acks[:4] {
			if err := s.MarkSent(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// A sub-address and another address of the domain, sent.
		for i, rcpt := range []string{"busy+tag@x.example", "other@x.example"} {
			f := filing(spool(t, s, fmt.Sprintf("n%d", i)), fmt.Sprintf("<n%d@x.example>", i), rcpt)
			res, err := s.File(ctx, f)
			if err != nil || res.AckID == 0 {
				t.Fatalf("file: %+v %v", res, err)
			}
			_ = s.MarkSent(ctx, res.AckID)
			acks = append(acks, res.AckID)
		}
		since := c.Now().Add(-time.Hour)
		busy := store.Recipients{Exact: "busy@x.example"}
		busyAll := store.Recipients{Exact: "busy@x.example", Like: []string{store.LikeEscape("busy+") + "%" + store.LikeEscape("@x.example")}}
		domain := store.Recipients{Like: []string{"%" + store.LikeEscape("@x.example")}}
		last := acks[len(acks)-1] + 1
		for _, tc := range []struct {
			r      store.Recipients
			before int64
			upTo   int
			want   int
		}{
			{busy, acks[4] + 1, 10, 4}, // the fifth is still pending
			{busy, acks[3], 10, 3},
			{busy, acks[0], 10, 0},
			{busy, acks[4], 2, 2},
			{store.Recipients{Exact: "nobody@x.example"}, last, 10, 0},
			{busyAll, last, 10, 5},
			{domain, last, 10, 6},
			{store.Recipients{All: true}, last, 10, 6},
			{store.Recipients{Like: []string{"%" + store.LikeEscape("@x_example")}}, last, 10, 0}, // _ is no wildcard
		} {
			n, err := s.RecentTo(ctx, tc.r, since, tc.before, tc.upTo)
			if err != nil || n != tc.want {
				t.Errorf("RecentTo(%+v, before %d, up to %d) = %d, %v; want %d", tc.r, tc.before, tc.upTo, n, err, tc.want)
			}
		}
		if n, _ := s.RecentTo(ctx, busy, c.Now().Add(time.Minute), acks[4]+1, 10); n != 0 {
			t.Errorf("rows before since counted: %d", n)
		}
	})
}

// TestNewIncidentRecordsEverything: a filing that opens an incident keeps
// every field, its indicators in order, its Message-ID for threading and a
// "created" event naming the report and the threading note, the same on
// both drivers (PostgreSQL files it in one statement, stores.SQLite in several).
func TestNewIncidentRecordsEverything(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		// A ticket to carry as a stranger, so the new filing has a note.
		first, err := s.File(ctx, &store.Filing{SpoolID: spool(t, s, "Subject: a\r\n\r\nx"), MessageID: "<first@a.example>", Sender: "a@a.example", Subject: "a", ReportJSON: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		long := strings.Repeat("長", 400) // 1,200 bytes: cut to 1,000 on a character boundary
		inds := []store.Indicator{{Kind: "url", Value: "http://z.example/"}, {Kind: "ipv4", Value: "192.0.2.9"}, {Kind: "domain", Value: "a.example"}}
		res, err := s.File(ctx, &store.Filing{SpoolID: spool(t, s, "Subject: b\r\n\r\ny"), MessageID: "<New@B.example>", Sender: "b@b.example",
			Subject: long, Ticket: first.Ticket, Taxonomy: "fraud", Type: "phishing", TLP: "amber", ReportJSON: []byte(`{"k":"v"}`), Indicators: inds})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != store.OutcomeNew || res.Ticket != "CSIRT#2026-000002" || !strings.Contains(res.Note, first.Ticket) {
			t.Fatalf("result %+v", res)
		}
		d, err := s.GetIncident(ctx, res.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		if d.Taxonomy != "fraud" || d.Type != "phishing" || d.TLP != "amber" || d.Requester != "b@b.example" || d.Status != vocab.StatusNew ||
			len(d.Subject) != 999 || !d.CreatedAt.Equal(c.Now()) {
			t.Errorf("incident %+v (subject %d bytes)", d.Incident, len(d.Subject))
		}
		if len(d.ReportList) != 1 || d.ReportList[0].ID != res.ReportID || string(d.ReportList[0].Report) != `{"k":"v"}` || d.ReportList[0].MessageID != "<New@B.example>" {
			t.Fatalf("reports %+v", d.ReportList)
		}
		if got := d.ReportList[0].Indicators; !reflect.DeepEqual(got, inds) {
			t.Errorf("indicators %+v, want %+v in order", got, inds)
		}
		want := fmt.Sprintf("report %d from b@b.example; %s", res.ReportID, res.Note)
		if len(d.Events) != 1 || d.Events[0].Kind != "created" || d.Events[0].Detail != want || !d.Events[0].At.Equal(c.Now()) {
			t.Errorf("events %+v, want one created: %q", d.Events, want)
		}
		// Its Message-ID threads a reply, in any letter case.
		reply, err := s.File(ctx, &store.Filing{SpoolID: spool(t, s, "Subject: c\r\n\r\nz"), MessageID: "<c@b.example>", Sender: "c@c.example",
			References: []string{"<new@b.example>"}, ReportJSON: []byte(`{}`)})
		if err != nil || reply.Outcome != store.OutcomeAttached || reply.Ticket != res.Ticket {
			t.Errorf("reply %+v (%v), want attached to %s", reply, err, res.Ticket)
		}
	})
}

// TestDuplicateByMessageIDOrRawHash: without a Message-ID the same raw
// bytes are a duplicate and other bytes are not; with one, the Message-ID
// decides, in any letter case, whatever the bytes.
func TestDuplicateByMessageIDOrRawHash(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		file := func(raw, mid string) store.FileResult {
			t.Helper()
			res, err := s.File(ctx, &store.Filing{SpoolID: spool(t, s, raw), MessageID: mid, Sender: "a@a.example", ReportJSON: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		first := file("Subject: same\r\n\r\nbytes", "")
		if first.Outcome != store.OutcomeNew {
			t.Fatalf("first %+v", first)
		}
		if again := file("Subject: same\r\n\r\nbytes", ""); again.Outcome != store.OutcomeDuplicate || again.Ticket != first.Ticket || again.ReportID != first.ReportID {
			t.Errorf("same bytes, no store.Message-ID: %+v, want a duplicate of %+v", again, first)
		}
		if other := file("Subject: same\r\n\r\nother bytes", ""); other.Outcome != store.OutcomeNew {
			t.Errorf("other bytes, no store.Message-ID: %+v, want new", other)
		}
		withID := file("Subject: x\r\n\r\none", "<ID@a.example>")
		if dup := file("Subject: x\r\n\r\ntwo", "<id@A.EXAMPLE>"); dup.Outcome != store.OutcomeDuplicate || dup.Ticket != withID.Ticket {
			t.Errorf("same store.Message-ID in another case, other bytes: %+v, want a duplicate of %s", dup, withID.Ticket)
		}
		if fresh := file("Subject: same\r\n\r\nbytes", "<new@a.example>"); fresh.Outcome != store.OutcomeNew {
			t.Errorf("bytes filed before but a new store.Message-ID: %+v, want new", fresh)
		}
	})
}

// TestIndicatorChecksPostgresOnly: migration 0004 is PostgreSQL's alone:
// there the indicators lose their two foreign keys (a trigger and a query
// per row), on stores.SQLite they keep them; both record the version.
func TestIndicatorChecksPostgresOnly(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		var n int
		if err := rawDB(s).QueryRow(rebind(s, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), 4).Scan(&n); err != nil || n != 1 {
			t.Fatalf("migration 4 recorded %d times (%v)", n, err)
		}
		q := `SELECT COUNT(*) FROM pragma_foreign_key_list('indicators')`
		want := 2
		if driverOf(s) == stores.Postgres {
			q = `SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'indicators'::regclass`
			want = 0
		}
		if err := rawDB(s).QueryRow(q).Scan(&n); err != nil || n != want {
			t.Fatalf("%d foreign keys on indicators (%v), want %d", n, err, want)
		}
	})
}

// TestFileBatchRecordsWhatOneByOneDoes: a batch mixing every way a filing
// can go (new with and without a Message-ID, duplicates of rows before
// the batch and inside it, by Message-ID and by raw bytes, a reply to a
// row of the batch, a ticket tag from a trusted sender and from a
// stranger, a re-run of a filed spool row, acknowledgements, follow-ups
// and alerts) leaves the store exactly as filing the same rows one by one
// does: every row of every table and every result.
func TestFileBatchRecordsWhatOneByOneDoes(t *testing.T) {
	eachDriver(t, func(t *testing.T, batched store.Store, c *clock) {
		ctx := context.Background()
		drv := driverOf(batched)
		alone := openTest(t, drv, c)
		run := func(s store.Store, inBatch bool) ([]store.FileResult, []string) {
			sp := func(raw string) int64 { return spool(t, s, raw) }
			before := &store.Filing{SpoolID: sp("before"), MessageID: "<before@x.example>", Sender: "old@x.example", Subject: "before",
				ReportJSON: []byte(`{}`), Ack: &store.AckRequest{Recipient: "old@x.example", Domain: "csirt.example.org"}}
			first, err := s.File(ctx, before)
			if err != nil {
				t.Fatal(err)
			}
			withAlert := filing(sp("alert"), "<alert@x.example>", "a@x.example")
			withAlert.Taxonomy, withAlert.Type, withAlert.TLP = "malicious-code", "c2-server", "amber"
			withAlert.Indicators = []store.Indicator{{"url", "http://c2.example/x"}, {"ipv4", "192.0.2.1"}, {"domain", "c2.example"}}
			withAlert.Matches = []store.Match{{"acme", "ipv4", "192.0.2.1"}, {"beta", "domain", "c2.example"}, {"acme", "url", "http://c2.example/x"}}
			withAlert.Alert = &store.AlertRequest{DutyAddress: "duty@csirt.example.org", WebhookURL: "https://hooks.example/x", Domain: "csirt.example.org"}
			noMID := filing(sp("same bytes"), "", "b@x.example")
			noMIDAgain := filing(sp("same bytes"), "", "c@x.example")
			dupInBatch := filing(sp("dup"), "<ALERT@x.example>", "d@x.example")
			dupBefore := filing(sp("dup before"), "<before@x.example>", "e@x.example")
			reply := filing(sp("reply"), "<reply@x.example>", "f@x.example")
			reply.References = []string{"<gone@x.example>", "<alert@x.example>"}
			reply.Ack.FollowUp = true
			trustedTag := filing(sp("tag"), "<tag@x.example>", "g@x.example")
			trustedTag.Ticket, trustedTag.Trusted = first.Ticket, true
			strangerTag := filing(sp("stranger"), "<stranger@x.example>", "h@x.example")
			strangerTag.Ticket = first.Ticket
			rerun := *before
			rerun.ReportJSON = []byte(`{"again":true}`)
			rerun.Matches = []store.Match{{"acme", "ipv4", "198.51.100.1"}}
			plain := filing(sp("plain"), "<plain@x.example>", "i@x.example")
			plain.Indicators = nil
			fs := []*store.Filing{withAlert, noMID, noMIDAgain, dupInBatch, dupBefore, reply, trustedTag, strangerTag, &rerun, plain}
			// Then a batch of filings that each plainly open an incident.
			plain1 := filing(sp("plain 1"), "<p1@x.example>", "j@x.example")
			plain1.Alert = withAlert.Alert
			plain2 := filing(sp("plain 2"), "", "k@x.example")
			plain2.Indicators = append(plain2.Indicators, store.Indicator{"cve", "cve-2026-0001"})
			plain3 := filing(sp("plain 3"), "<p3@x.example>", "l@x.example")
			plain3.Ack = nil
			// And a batch that looks plain until the store is asked: a new
			// filing and a repeat of one filed before.
			plain4 := filing(sp("plain 4"), "<p4@x.example>", "m@x.example")
			plain4.Matches = []store.Match{{"beta", "ipv4", "198.51.100.1"}}
			repeat := filing(sp("repeat"), "<p1@x.example>", "n@x.example")
			repeat.Matches = plain4.Matches
			var res []store.FileResult
			for _, fs := range [][]*store.Filing{fs, {plain1, plain2, plain3}, {plain4, repeat}} {
				if inBatch {
					r, err := s.FileBatch(ctx, fs)
					if err != nil {
						t.Fatal(err)
					}
					res = append(res, r...)
					continue
				}
				for _, f := range fs {
					r, err := s.File(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					res = append(res, r)
				}
			}
			dump, norm := dumpStore(t, s)
			for i := range res {
				r := &res[i]
				r.IncidentID, r.ReportID, r.AckID = norm("incidents", r.IncidentID), norm("reports", r.ReportID), norm("outbox", r.AckID)
			}
			return res, dump
		}
		gotRes, got := run(batched, true)
		wantRes, want := run(alone, false)
		if !reflect.DeepEqual(gotRes, wantRes) {
			t.Errorf("results:\nbatch %+v\nalone %+v", gotRes, wantRes)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("store after the batch differs from one by one:\nbatch:\n%s\nalone:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		outcomes := map[string]int{}
		for _, r := range gotRes {
			outcomes[r.Outcome]++
		}
		if outcomes[store.OutcomeNew] != 8 || outcomes[store.OutcomeDuplicate] != 4 || outcomes[store.OutcomeAttached] != 2 || outcomes[store.OutcomeReprocessed] != 1 {
			t.Errorf("outcomes %v: the batch does not cover what it should", outcomes)
		}
	})
}

func dumpStore(t *testing.T, s store.Store) ([]string, func(table string, id int64) int64) {
	t.Helper()
	// IDs are opaque: PostgreSQL's sequences leave gaps where a batch
	// reserved more than it used. Rows are compared with each table's IDs
	// renumbered in order, references and our Message-IDs with them.
	rank := map[string]map[int64]int64{"incidents": {}, "reports": {}, "outbox": {}, "indicators": {}, "events": {}}
	for table, m := range rank {
		rows, err := rawDB(s).Query(`SELECT id FROM ` + table + ` ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			m[id] = int64(len(m) + 1)
		}
		rows.Close()
	}
	norm := func(table string, id int64) int64 {
		if id == 0 {
			return 0
		}
		return rank[table][id]
	}
	// Columns holding an ID of these tables, by query.
	idCols := map[int]map[int]string{
		0: {0: "incidents"},
		1: {0: "reports", 2: "incidents"},
		2: {0: "indicators", 1: "reports", 2: "incidents"},
		3: {1: "incidents"},
		4: {0: "events", 1: "incidents"},
		5: {0: "outbox", 1: "incidents", 2: "reports"},
		8: {0: "reports", 1: "incidents"},
	}
	ourMID := regexp.MustCompile(`\.(ack|followup|alert|webhook)\.(\d+)\.[0-9a-f]{24}@`)
	reportIDJSON := regexp.MustCompile(`"report_id":(\d+)`)
	reportInText := regexp.MustCompile(`report (\d+)`)
	var out []string
	for qi, q := range []string{
		`SELECT id, ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at FROM incidents ORDER BY id`,
		`SELECT id, spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at FROM reports ORDER BY id`,
		`SELECT id, report_id, incident_id, kind, value FROM indicators ORDER BY id`,
		`SELECT message_id, incident_id FROM thread_ids ORDER BY message_id`,
		`SELECT id, incident_id, at, kind, actor, detail FROM events ORDER BY id`,
		`SELECT id, incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at FROM outbox ORDER BY id`,
		`SELECT spool_id, state, outcome, reason, last_error, lease_until FROM queue ORDER BY spool_id`,
		`SELECT year, last FROM ticket_counters ORDER BY year`,
		`SELECT report_id, incident_id, constituent, kind, value, tlp, noticed_at FROM constituent_matches ORDER BY id`,
	} {
		rows, err := rawDB(s).Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			line := strings.Fields(q)[len(cols)+2] + ":" // the table's name
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				if table, ok := idCols[qi][i]; ok && v != nil {
					v = norm(table, reflect.ValueOf(v).Int())
				}
				line += fmt.Sprintf(" %v", v)
			}
			// Our Message-IDs name the report and differ by their random
			// part alone.
			line = ourMID.ReplaceAllStringFunc(line, func(m string) string {
				p := ourMID.FindStringSubmatch(m)
				id, _ := strconv.ParseInt(p[2], 10, 64)
				return fmt.Sprintf(".%s.%d.RANDOM@", p[1], norm("reports", id))
			})
			line = reportIDJSON.ReplaceAllStringFunc(line, func(m string) string {
				id, _ := strconv.ParseInt(reportIDJSON.FindStringSubmatch(m)[1], 10, 64)
				return fmt.Sprintf(`"report_id":%d`, norm("reports", id))
			})
			if qi == 4 { // events name reports in their text
				line = reportInText.ReplaceAllStringFunc(line, func(m string) string {
					id, _ := strconv.ParseInt(reportInText.FindStringSubmatch(m)[1], 10, 64)
					return fmt.Sprintf("report %d", norm("reports", id))
				})
			}
			lines = append(lines, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if qi == 3 || qi == 8 { // thread_ids: in Message-ID order once renumbered; matches: one statement's rows in any order
			slices.Sort(lines)
		}
		out = append(out, lines...)
	}
	return out, norm
}

// TestClaimMessagesIsClaimAndGetMessage: ClaimMessages (one statement on
// PostgreSQL) leases what Claim would, oldest first, with each message
// byte for byte (a chunked one whole), and quarantines a row that crashed
// its workers too often as Claim does.
func TestClaimMessagesIsClaimAndGetMessage(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		big := bytes.Repeat([]byte("chunked message line\r\n"), store.ChunkSize/10)
		ids := []int64{spool(t, s, "first"), 0, 0, 0}
		var err error
		if ids[1], err = s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, MailFrom: "b@example.net", Source: bytes.NewReader(big)}); err != nil {
			t.Fatal(err)
		}
		ids[2], ids[3] = spool(t, s, "third"), spool(t, s, "fourth")
		raws := [][]byte{[]byte("first"), big, []byte("third"), []byte("fourth")}
		cl, msgs, err := s.ClaimMessages(ctx, "w", 3, time.Second, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(cl) != 3 || len(msgs) != 3 {
			t.Fatalf("claimed %+v, %d messages; want 3", cl, len(msgs))
		}
		for k, i := range []int{0, 1, 2} {
			if cl[k].SpoolID != ids[i] || cl[k].Attempts != 1 {
				t.Errorf("claim %d: %+v, want spool %d attempt 1 (oldest first)", k, cl[k], ids[i])
			}
			if msgs[k] == nil || msgs[k].ID != ids[i] || !bytes.Equal(msgs[k].Raw, raws[i]) || msgs[k].ReceivedAt.IsZero() {
				t.Errorf("message %d: %+v, want spool %d with its bytes", k, msgs[k], ids[i])
			}
		}
		if msgs[1] != nil && (msgs[1].MailFrom != "b@example.net" || msgs[1].Channel != store.ChannelSMTP || msgs[1].Size != int64(len(big))) {
			t.Errorf("chunked message: from %q channel %q size %d", msgs[1].MailFrom, msgs[1].Channel, msgs[1].Size)
		}
		// What is leased is not claimed again; the fourth row is.
		if cl, _, err := s.ClaimMessages(ctx, "w", 3, time.Second, 2); err != nil || len(cl) != 1 || cl[0].SpoolID != ids[3] {
			t.Fatalf("second claim %+v %v, want only spool %d", cl, err, ids[3])
		}
		// Leases run out twice: rows whose lease ran out are claimed one
		// at a time; the third time a row is over maxAttempts and is
		// quarantined, not returned.
		c.Add(time.Minute)
		for i := range 4 {
			if cl, _, err := s.ClaimMessages(ctx, "w", 10, time.Second, 2); err != nil || len(cl) != 1 || cl[0].SpoolID != ids[i] || cl[0].Attempts != 2 {
				t.Fatalf("after the leases ran out: %+v %v, want spool %d alone at attempt 2", cl, err, ids[i])
			}
		}
		c.Add(time.Minute)
		for range 4 {
			if cl, msgs, err := s.ClaimMessages(ctx, "w", 10, time.Second, 2); err != nil || len(cl) != 0 || len(msgs) != 0 {
				t.Fatalf("third claim %+v %v, want none", cl, err)
			}
		}
		qs, _ := s.ListQueue(ctx, store.StateQuarantined, 10)
		if len(qs) != 4 || qs[0].Reason != "crashed" {
			t.Fatalf("quarantined %+v, want the four, crashed", qs)
		}
	})
}

// TestPostgresFailedBatchWritesNothing: a batch that fails inside the
// database (here a report PostgreSQL cannot store, with a NUL byte) leaves
// nothing behind, not even a ticket number, and the store (on one
// connection) files the next batch.
func TestPostgresFailedBatchWritesNothing(t *testing.T) {
	s := openTest(t, stores.Postgres, &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)})
	rawDB(s).SetMaxOpenConns(1) // whatever the failed batch left on its connection, the next one meets
	ctx := context.Background()
	good := filing(spool(t, s, "good"), "<good@x.example>", "a@x.example")
	bad := filing(spool(t, s, "bad"), "<bad@x.example>", "b@x.example")
	bad.ReportJSON = []byte("{\"text\":\"\x00\"}")
	if _, err := s.FileBatch(ctx, []*store.Filing{good, bad}); err == nil {
		t.Fatal("a report with a NUL byte was stored")
	}
	before, _ := dumpStore(t, s)
	for _, l := range before {
		if !strings.HasPrefix(l, "queue:") {
			t.Errorf("after the failed batch: %s", l)
		}
	}
	res, err := s.FileBatch(ctx, []*store.Filing{good, filing(spool(t, s, "next"), "<next@x.example>", "c@x.example")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Ticket != "CSIRT#2026-000001" || res[1].Ticket != "CSIRT#2026-000002" {
		t.Errorf("tickets after the failed batch: %s %s", res[0].Ticket, res[1].Ticket)
	}
}

// TestPostgresSessionsCommitDurably: a role (or database) whose default is
// synchronous_commit off still gets sessions that wait for the disk, so a
// spool commit is durable before the 250; a DSN that names the setting is
// the operator's choice and is kept.
func TestPostgresSessionsCommitDurably(t *testing.T) {
	dsn := postgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the role's cleanup below
	role := fmt.Sprintf("madoguchi_lazy_%d_%d", os.Getpid(), schemaN.Add(1))
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN SUPERUSER`,
		`ALTER ROLE ` + role + ` SET synchronous_commit = off`,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// The store's tables in this test's schema are the role's.
		if _, err := admin.Exec(`DROP OWNED BY ` + role); err != nil {
			t.Error(err)
		}
		if _, err := admin.Exec(`DROP ROLE ` + role); err != nil {
			t.Error(err)
		}
	})
	asRole := regexp.MustCompile(`^postgres://[^@/]*@`).ReplaceAllString(dsn, "postgres://"+role+"@")
	if asRole == dsn {
		t.Skipf("cannot name a role in %q", dsn)
	}
	setting := func(dsn string) string {
		t.Helper()
		s, err := stores.Open(context.Background(), stores.Postgres, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var v string
		if err := rawDB(s).QueryRow(`SHOW synchronous_commit`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// The role's default is what a plain connection gets...
	plain, err := sql.Open("pgx", asRole)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := plain.QueryRow(`SHOW synchronous_commit`).Scan(&v); err != nil || v != "off" {
		t.Fatalf("the role's own default: %q %v", v, err)
	}
	plain.Close()
	// ...and not what the store's sessions get.
	if v := setting(asRole); v != "on" {
		t.Errorf("store session as a role with synchronous_commit off: %q, want on", v)
	}
	if v := setting(asRole + "&options=-c%20synchronous_commit%3Dremote_write"); v != "remote_write" {
		t.Errorf("a DSN naming synchronous_commit in options: %q, want it kept", v)
	}
	if v := setting(asRole + "&synchronous_commit=local"); v != "local" {
		t.Errorf("a DSN with synchronous_commit as a parameter: %q, want it kept", v)
	}
}

// TestCrashQuarantinesTheCulpritAlone: a batch of eight is claimed and
// the worker dies on one of them, again and again. After a crash the rows
// come back one at a time, so the seven innocent ones are filed and only
// the one that kills the worker is quarantined.
func TestCrashQuarantinesTheCulpritAlone(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		var ids []int64
		for i := range 8 {
			ids = append(ids, spool(t, s, fmt.Sprint("c", i)))
		}
		culprit := ids[5]
		for round := 0; round < 40; round++ {
			cl, err := s.Claim(ctx, "w", 8, time.Minute, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(cl) == 0 {
				break
			}
			crashed := false
			for _, x := range cl {
				if x.SpoolID == culprit {
					crashed = true // the daemon dies with the whole claim
				}
			}
			if crashed {
				c.Add(2 * time.Minute)
				continue
			}
			for _, x := range cl {
				if _, err := s.File(ctx, filing(x.SpoolID, fmt.Sprintf("<c%d@x>", x.SpoolID), "r@x.example")); err != nil {
					t.Fatal(err)
				}
			}
		}
		counts, _ := s.QueueCounts(ctx)
		qs, _ := s.ListQueue(ctx, store.StateQuarantined, 10)
		if counts[store.StateDone] != 7 || len(qs) != 1 || qs[0].SpoolID != culprit || qs[0].Reason != "crashed" {
			t.Fatalf("queue %v, quarantined %+v: want the seven filed and spool %d alone quarantined", counts, qs, culprit)
		}
	})
}

// TestReleaseHandsBackUntouched: rows a worker claimed but gives back
// are ready at once, their attempt not counted, and no other worker's
// rows are touched.
func TestReleaseHandsBackUntouched(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a, b := spool(t, s, "a"), spool(t, s, "b")
		cl, _ := s.Claim(ctx, "w1", 1, time.Minute, 3)
		cl2, _ := s.Claim(ctx, "w2", 1, time.Minute, 3)
		if len(cl) != 1 || len(cl2) != 1 || cl[0].SpoolID != a || cl2[0].SpoolID != b {
			t.Fatalf("claims %+v %+v", cl, cl2)
		}
		if err := s.Release(ctx, "w1", []int64{a, b}); err != nil {
			t.Fatal(err)
		}
		again, _ := s.Claim(ctx, "w3", 10, time.Minute, 3)
		if len(again) != 1 || again[0].SpoolID != a || again[0].Attempts != 1 {
			t.Fatalf("after release: %+v, want spool %d alone at attempt 1 (w2's row untouched)", again, a)
		}
	})
}

// TestOAuth2TokensKept: an account's refresh token is kept and replaced
// (rotation), and is none before it is set.
func TestOAuth2TokensKept(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		if _, err := s.GetOAuth2Token(ctx, "imap:csirt"); err != store.ErrNotFound {
			t.Fatalf("before: %v", err)
		}
		for _, tok := range []store.OAuth2Token{{"rt-1", "seed"}, {"rt-2", "seed"}} {
			if err := s.SetOAuth2Token(ctx, "imap:csirt", tok); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetOAuth2Token(ctx, "imap:csirt"); err != nil || got != tok {
				t.Fatalf("got %+v %v, want %+v", got, err, tok)
			}
		}
	})
}

// rawDB is the database handle under a store, for what the contract does
// not say (breaking a table, reading a row as it is stored).
func rawDB(s store.Store) *sql.DB { return s.(interface{ SQL() *sql.DB }).SQL() }

// rebind is a query with ? placeholders in the store's own style.
func rebind(s store.Store, q string) string {
	if _, ok := s.(*postgres.Store); ok {
		n := 0
		return regexp.MustCompile(`\?`).ReplaceAllStringFunc(q, func(string) string { n++; return fmt.Sprintf("$%d", n) })
	}
	return q
}

// driverOf is the driver name of a store the suite opened.
func driverOf(s store.Store) string {
	if _, ok := s.(*postgres.Store); ok {
		return stores.Postgres
	}
	return stores.SQLite
}

// TestServerWarnings: the store names fsync and autovacuum when the server
// runs without them (SQLite has no server, and nothing to say).
func TestServerWarnings(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		got, err := s.ServerWarnings(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if driverOf(s) == stores.SQLite {
			if got != nil {
				t.Fatalf("SQLite: %v", got)
			}
			return
		}
		var fsync, autovacuum string
		if err := rawDB(s).QueryRow(`SELECT current_setting('fsync'), current_setting('autovacuum')`).Scan(&fsync, &autovacuum); err != nil {
			t.Fatal(err)
		}
		var want []string
		if fsync == "off" {
			want = append(want, "fsync off")
		}
		if autovacuum == "off" {
			want = append(want, "autovacuum off")
		}
		if len(got) != len(want) {
			t.Fatalf("server fsync=%s autovacuum=%s: warnings %q", fsync, autovacuum, got)
		}
		for i, w := range want {
			if !strings.Contains(got[i], w) {
				t.Errorf("warning %d: %q, want it to name %q", i, got[i], w)
			}
		}
	})
}
