package intake

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// The Dovecot harness is internal/testenv's (shared with the daemon's
// end-to-end tests).
type dovecot = testenv.Dovecot

func startDovecot(t *testing.T) *dovecot { return testenv.StartDovecot(t) }

func report(n int) string {
	return fmt.Sprintf("From: reporter%d@reporter.example\r\nTo: csirt@example.org\r\nSubject: phishing %d\r\nMessage-ID: <imap%d@reporter.example>\r\n\r\nhttp://evil%d.example/\r\n", n, n, n, n)
}

type pollerRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	passes atomic.Int64
	errs   atomic.Int64
}

func runPoller(t *testing.T, s IMAPStore, cfg IMAPConfig) *pollerRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &pollerRun{cancel: cancel, done: make(chan struct{})}
	p := &Poller{Cfg: cfg, Store: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPass: func(_ int, err error) {
			r.passes.Add(1)
			if err != nil {
				r.errs.Add(1)
			}
		}}
	go func() { defer close(r.done); p.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *pollerRun) stop() {
	r.cancel()
	<-r.done
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func spooledCount(t *testing.T, s store.Store) int {
	t.Helper()
	c, err := s.QueueCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c[store.StateReady]
}

// TestIMAPPollMoveIdleRestart: messages APPENDed to Dovecot are spooled and
// moved to Processed only then; a message arriving later is pushed by IDLE
// (the poll interval is far longer than the test); Dovecot restarted in the
// middle is reconnected to; a restarted poller neither skips nor re-spools.
func TestIMAPPollMoveIdleRestart(t *testing.T) {
	d := startDovecot(t)
	s := openStore(t)
	cfg := IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", Password: "secret", Mailbox: "INBOX",
		ProcessedMailbox: "Processed", PollInterval: 10 * time.Minute}
	d.Append("INBOX", report(1))
	d.Append("INBOX", report(2))
	r := runPoller(t, s, cfg)
	waitUntil(t, "two spooled and moved", 10*time.Second, func() bool {
		n, _ := d.Count("Processed")
		return spooledCount(t, s) == 2 && n == 2
	})
	if n, _ := d.Count("INBOX"); n != 0 {
		t.Fatalf("INBOX still holds %d", n)
	}

	// IDLE: the poll interval is 10 minutes, so only a push gets this in.
	d.Append("INBOX", report(3))
	waitUntil(t, "IDLE push", 10*time.Second, func() bool { return spooledCount(t, s) == 3 })

	// Dovecot restarted under the poller.
	d.Stop()
	d.Start()
	d.Append("INBOX", report(4))
	waitUntil(t, "reconnect after a Dovecot restart", 20*time.Second, func() bool {
		n, _ := d.Count("Processed")
		return spooledCount(t, s) == 4 && n == 4
	})
	r.stop()

	// A restarted poller finds nothing new and spools nothing again.
	d.Append("INBOX", report(5))
	r2 := runPoller(t, s, cfg)
	waitUntil(t, "the new poller's pass", 10*time.Second, func() bool { return spooledCount(t, s) == 5 })
	waitUntil(t, "a second pass", 5*time.Second, func() bool { return r2.passes.Load() >= 1 })
	if got := spooledCount(t, s); got != 5 {
		t.Fatalf("%d spooled, want 5", got)
	}
	m, err := s.GetMessage(context.Background(), 1)
	if err != nil || m.Channel != store.ChannelIMAP || string(m.Raw) != report(1) {
		t.Fatalf("spooled bytes differ from the appended message: %v %q", err, m.Raw)
	}
}

// TestIMAPSpoolFailureLeavesMessage: when the store refuses the message
// (a trigger makes every spool insert fail, as a full disk would), it stays
// in INBOX, unflagged; once the store works it is spooled and moved.
func TestIMAPSpoolFailureLeavesMessage(t *testing.T) {
	d := startDovecot(t)
	s := openStore(t)
	if _, err := s.(interface{ SQL() *sql.DB }).SQL().Exec(`CREATE TRIGGER spool_fails BEFORE INSERT ON spool BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	d.Append("INBOX", report(1))
	r := runPoller(t, s, IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", Password: "secret", Mailbox: "INBOX",
		ProcessedMailbox: "Processed", PollInterval: time.Second})
	waitUntil(t, "a failed pass", 10*time.Second, func() bool { return r.errs.Load() >= 1 })
	if n, _ := d.Count("INBOX"); n != 1 {
		t.Fatalf("INBOX holds %d after a failed spool, want 1", n)
	}
	if n, _ := d.Count("Processed"); n != 0 {
		t.Fatalf("a message that was not spooled was moved (%d)", n)
	}
	if _, err := s.(interface{ SQL() *sql.DB }).SQL().Exec(`DROP TRIGGER spool_fails`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "spooled after the store recovered", 15*time.Second, func() bool {
		n, _ := d.Count("Processed")
		return spooledCount(t, s) == 1 && n == 1
	})
}

// TestIMAPUIDValidityChangeAndSeenMode: in \Seen mode messages stay and are
// flagged; when the mailbox is recreated (a new UIDVALIDITY) the poller
// starts over under it instead of waiting for UIDs past the old last one.
func TestIMAPUIDValidityChangeAndSeenMode(t *testing.T) {
	d := startDovecot(t)
	s := openStore(t)
	cfg := IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", Password: "secret", Mailbox: "Reports", PollInterval: time.Second}
	for i := 1; i <= 3; i++ {
		d.Append("Reports", report(i))
	}
	r := runPoller(t, s, cfg)
	waitUntil(t, "three spooled and flagged", 10*time.Second, func() bool {
		n, seen := d.Count("Reports")
		return spooledCount(t, s) == 3 && n == 3 && seen == 3
	})
	r.stop()
	p := &Poller{Cfg: cfg}
	before, _ := s.GetIMAPState(context.Background(), p.Key())

	c := d.Client()
	if err := c.Delete("Reports").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Reports", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	d.Append("Reports", report(10)) // UID 1 under the new UIDVALIDITY
	runPoller(t, s, cfg)
	waitUntil(t, "the message under the new UIDVALIDITY", 10*time.Second, func() bool { return spooledCount(t, s) == 4 })
	after, _ := s.GetIMAPState(context.Background(), p.Key())
	if after.UIDValidity == before.UIDValidity || after.LastUID != 1 || before.LastUID != 3 {
		t.Fatalf("state before %+v after %+v", before, after)
	}
}

// pgStore opens a store in a fresh PostgreSQL database (skipped unless
// MADOGUCHI_TEST_POSTGRES or CI is set).
func pgStore(t *testing.T) store.Store {
	t.Helper()
	s, err := stores.Open(context.Background(), stores.Postgres, testenv.PostgresDSN(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestIMAPTakeover: two daemons' pollers on one mailbox and one PostgreSQL:
// only the lock holder polls; when it stops (its session and advisory lock
// end with it), the other takes over and nothing is spooled twice.
func TestIMAPTakeover(t *testing.T) {
	d := startDovecot(t)
	s := pgStore(t)
	cfg := IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", Password: "secret", Mailbox: "INBOX",
		ProcessedMailbox: "Processed", PollInterval: 300 * time.Millisecond}
	d.Append("INBOX", report(1))
	a := runPoller(t, s, cfg)
	waitUntil(t, "the first poller's pass", 10*time.Second, func() bool { return a.passes.Load() >= 1 })
	held := &lockCounter{IMAPStore: s}
	b := runPoller(t, held, cfg)
	waitUntil(t, "the second poller refused the mailbox twice", 10*time.Second, func() bool { return held.refused.Load() >= 2 })
	if b.passes.Load() != 0 {
		t.Fatal("the second poller polled while the first held the mailbox")
	}
	a.stop()
	d.Append("INBOX", report(2))
	waitUntil(t, "the takeover", 10*time.Second, func() bool {
		n, _ := d.Count("Processed")
		return b.passes.Load() >= 1 && n == 2
	})
	if got := spooledCount(t, s); got != 2 {
		t.Fatalf("%d spooled, want 2", got)
	}
}

// lockCounter is a store that counts the mailbox locks it refused.
type lockCounter struct {
	IMAPStore
	refused atomic.Int64
}

func (l *lockCounter) LockMailbox(ctx context.Context, key string) (func(), bool, error) {
	release, ok, err := l.IMAPStore.LockMailbox(ctx, key)
	if err == nil && !ok {
		l.refused.Add(1)
	}
	return release, ok, err
}
