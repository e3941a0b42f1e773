package notify

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	s     store.Store
	clock *testClock
	keys  *crypto.Keys
	n     int
}

func newFixture(t *testing.T, known []byte) *fixture {
	t.Helper()
	clock := &testClock{t: time.Now()}
	s, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{Now: clock.Now, TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	keys, err := crypto.LoadKeys([][]byte{team}, nil, known)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, clock: clock, keys: keys}
}

// file files a new report from sender and returns its outbox row id.
func (f *fixture) file(t *testing.T, sender, subject, lang, decryption string) {
	t.Helper()
	f.n++
	ctx := context.Background()
	id, err := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx", f.n))})
	if err != nil {
		t.Fatal(err)
	}
	mid := fmt.Sprintf("<r%d@reporter.example>", f.n)
	js := fmt.Sprintf(`{"message_id":%q,"subject":%q,"language":%q,"decryption":{"status":%q},"thread":{"references":[]},"tlp":null}`, mid, subject, lang, decryption)
	if _, err := f.s.File(ctx, &store.Filing{SpoolID: id, MessageID: mid, Sender: sender, Subject: subject, ReportJSON: []byte(js),
		Ack: &store.AckRequest{Recipient: sender, Domain: "csirt.example.org"}}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) writer(d Deliverer) *Writer {
	return &Writer{Store: f.s, Deliver: d, Keys: f.keys, Now: f.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Team: Team{Name: "Example CSIRT", Address: "csirt@example.org", Hours: "09:00-18:00", Timezone: "Asia/Tokyo"}, MaxAttempts: 3}
}

func (f *fixture) states(t *testing.T) map[string]int {
	t.Helper()
	c, err := f.s.OutboxCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func gpgHome(t *testing.T) func(stdin []byte, args ...string) (string, string, error) {
	t.Helper()
	return testenv.NewGPG(t).Run
}

// TestRelayAcknowledgements: through a real Postfix, a signed Japanese
// acknowledgement arrives threaded and decodable, its signature verifies
// with gpg; an encrypted report's acknowledgement is encrypted to the
// reporter and gpg decrypts it; a 5xx is a dead letter at once; bad and own
// addresses never reach the relay.
func TestRelayAcknowledgements(t *testing.T) {
	pf := testenv.StartPostfix(t)
	gpg := gpgHome(t)
	if _, stderr, err := gpg(nil, "--quick-gen-key", "Reporter <enc@reporter.example>", "ed25519", "sign,cert", "1y"); err != nil {
		t.Fatal(stderr)
	}
	out, _, _ := gpg(nil, "--with-colons", "--list-keys", "enc@reporter.example")
	fpr := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fpr = strings.Split(l, ":")[9]
			break
		}
	}
	if _, stderr, err := gpg(nil, "--quick-add-key", fpr, "cv25519", "encr", "1y"); err != nil {
		t.Fatal(stderr)
	}
	pub, _, _ := gpg(nil, "--armor", "--export", "enc@reporter.example")
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	if _, stderr, err := gpg(teamPub, "--import"); err != nil {
		t.Fatal(stderr)
	}

	f := newFixture(t, []byte(pub))
	f.file(t, "reporter@reporter.example", "Webサイト改ざんの報告", "ja", "none")
	f.file(t, "enc@reporter.example", "Encrypted: compromised host", "en", "ok")
	f.file(t, "nobody@reject.example", "Phishing", "en", "none")
	w := f.writer(&Relay{Addr: pf.Addr, Hostname: "csirt.example.org"})
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 2 || st[store.OutboxDead] != 1 {
		t.Fatalf("outbox after one pass: %v", st)
	}
	msgs := pf.Delivered(2)
	var ja, enc []byte
	for _, m := range msgs {
		switch {
		case bytes.Contains(m, []byte("multipart/encrypted")):
			enc = m
		case bytes.Contains(m, []byte("multipart/signed")):
			ja = m
		}
	}
	if ja == nil || enc == nil {
		t.Fatalf("want one signed and one encrypted message, got %d", len(msgs))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(ja))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if !strings.HasPrefix(subj, "[CSIRT#2026-00000") || !strings.HasSuffix(subj, "] Re: Webサイト改ざんの報告") || msg.Header.Get("Auto-Submitted") != "auto-replied" || msg.Header.Get("In-Reply-To") != "<r1@reporter.example>" {
		t.Fatalf("headers: %q %v", subj, msg.Header)
	}
	res := crypto.Unwrap(ja, f.keys, crypto.Limits{}, time.Now())
	_, qpBody, _ := bytes.Cut(bytes.ReplaceAll(res.Cleartext, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
	text, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(qpBody)))
	if res.Signature != vocab.SigGood || !strings.Contains(string(text), "として受け付けました") {
		t.Fatalf("our Unwrap of the relayed ack: %s (text %q)", res.Signature, text)
	}
	// gpg on the signed part, byte for byte as relayed.
	ct := msg.Header.Get("Content-Type")
	b := ct[strings.Index(ct, `boundary="`)+10:]
	b = b[:strings.Index(b, `"`)]
	body, _ := io.ReadAll(msg.Body)
	body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	parts := strings.Split(string(body), "--"+b)
	signed := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(parts[1], "\n"), "\n"), "\n", "\r\n")
	sig := parts[2][strings.Index(parts[2], "-----BEGIN"):]
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "p"), []byte(signed), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "p.asc"), []byte(sig), 0o600)
	if _, stderr, err := gpg(nil, "--verify", filepath.Join(dir, "p.asc"), filepath.Join(dir, "p")); err != nil || !strings.Contains(stderr, "Good signature") {
		t.Fatalf("gpg --verify of the relayed ack: %v\n%s", err, stderr)
	}
	// gpg decrypts the encrypted one with the reporter's key.
	armored := string(enc[bytes.Index(enc, []byte("-----BEGIN PGP MESSAGE")):])
	armored = armored[:strings.Index(armored, "-----END PGP MESSAGE-----")+25]
	plain, stderr, err := gpg([]byte(armored), "--decrypt")
	if err != nil || !strings.Contains(stderr, "Good signature") || !strings.Contains(plain, "CSIRT#2026-000002") {
		t.Fatalf("gpg --decrypt: %v\n%s\n%s", err, stderr, plain)
	}
	if bytes.Contains(enc, []byte("CSIRT#2026-000002 in the subject")) {
		t.Fatal("the encrypted ack's body is readable outside the encryption")
	}
}

// TestRelayDownThenBack: with the relay down the row is retried with
// back-off, not lost; when the relay returns it is delivered. A crash
// between delivery and marking sent sends it once more, with the same
// Message-ID (the documented bound).
func TestRelayDownThenBack(t *testing.T) {
	pf := testenv.StartPostfix(t)
	f := newFixture(t, nil)
	f.file(t, "reporter@reporter.example", "Phishing at bank-example", "en", "none")
	w := f.writer(&Relay{Addr: pf.Addr})
	pf.Stop()
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _ := f.s.ClaimOutbox(context.Background(), 10, time.Minute)
	if len(rows) != 0 {
		t.Fatal("a failed row was claimable before its back-off")
	}
	if st := f.states(t); st[store.OutboxPending] != 1 {
		t.Fatalf("after a refused connection: %v", st)
	}
	pf.Start()
	f.clock.Add(2 * time.Minute)
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 1 {
		t.Fatalf("after the relay returned: %v", st)
	}
	pf.Delivered(1)

	// Crash between delivery and MarkSent: deliver by hand from a claimed
	// row and never mark it; after the lease the row goes out again.
	f.file(t, "second@reporter.example", "Malware", "en", "none")
	rows, err := f.s.ClaimOutbox(context.Background(), 10, time.Minute)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v %d", err, len(rows))
	}
	msg, _, err := w.Render(context.Background(), rows[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.deliverer().Deliver(context.Background(), "", []string{rows[0].Recipient}, msg, rows[0].MessageID); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Minute) // the dead daemon's lease runs out
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := pf.Delivered(3)
	same := 0
	for _, m := range got {
		if bytes.Contains(m, []byte("Message-ID: "+rows[0].MessageID)) {
			same++
		}
	}
	if same != 2 {
		t.Fatalf("the repeat after a crash: %d copies with Message-ID %s, want 2", same, rows[0].MessageID)
	}
}

// TestNotifyGuards: header injection and our own address are dead letters
// without reaching any relay; the per-hour limit skips the excess with a
// reason; a TLP:RED report's subject is not echoed.
func TestNotifyGuards(t *testing.T) {
	f := newFixture(t, nil)
	dir := t.TempDir()
	for _, r := range []string{"evil@reporter.example\r\nBcc: victim@elsewhere.example", "csirt@example.org", "\"quoted\"@x.example"} {
		f.file(t, r, "x", "en", "none")
	}
	for range 3 {
		f.file(t, "busy@reporter.example", "again", "en", "none")
	}
	w := f.writer(FileDelivery{Dir: dir})
	w.RatePerHour = 2
	for range 3 {
		if _, err := w.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := f.states(t)
	if st[store.OutboxDead] != 3 || st[store.OutboxSent] != 2 || st[store.OutboxSkipped] != 1 {
		t.Fatalf("outbox: %v", st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 2 {
		t.Fatalf("%d files written, want 2", len(files))
	}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("victim")) || !bytes.Contains(b, []byte("To: <busy@reporter.example>")) {
			t.Fatalf("unexpected ack:\n%s", b)
		}
	}

	// TLP:RED: the subject stays out of ours.
	f2 := newFixture(t, nil)
	ctx := context.Background()
	id, _ := f2.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte("x")})
	js := `{"message_id":"<red@x.example>","subject":"TLP:RED breach at ACME internal-db-07","language":"en","decryption":{"status":"none"},"thread":{"references":[]},"tlp":"red"}`
	if _, err := f2.s.File(ctx, &store.Filing{SpoolID: id, MessageID: "<red@x.example>", Sender: "a@x.example", ReportJSON: []byte(js),
		Ack: &store.AckRequest{Recipient: "a@x.example", Domain: "csirt.example.org"}}); err != nil {
		t.Fatal(err)
	}
	rows, _ := f2.s.ClaimOutbox(ctx, 1, time.Minute)
	w2 := f2.writer(FileDelivery{Dir: t.TempDir()})
	w2.Keys = nil
	msg, _, err := w2.Render(ctx, rows[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("ACME")) || bytes.Contains(msg, []byte("internal-db")) {
		t.Fatalf("TLP:RED content echoed:\n%s", msg)
	}
}

// TestRelayUTF8AndLongSubject: a reporter with a UTF-8 local part (RFC
// 6531/6532) gets the acknowledgement through Postfix with SMTPUTF8, and a
// 10,000-character subject is cut to a bounded, well-formed encoded header.
func TestRelayUTF8AndLongSubject(t *testing.T) {
	pf := testenv.StartPostfix(t)
	f := newFixture(t, nil)
	long := strings.Repeat("長い件名", 2500) // 10,000 characters
	f.file(t, "田中@reporter.example", long, "ja", "none")
	w := f.writer(&Relay{Addr: pf.Addr})
	w.Keys = nil
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 1 {
		t.Fatalf("outbox: %v", st)
	}
	got := pf.Delivered(1)[0]
	msg, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Header.Get("To"), "田中@reporter.example") {
		t.Fatalf("To: %q", msg.Header.Get("To"))
	}
	raw := msg.Header.Get("Subject")
	subj, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil || utf8.RuneCountInString(subj) > maxSubjectRunes+40 || !strings.HasPrefix(subj, "[CSIRT#") || !strings.Contains(subj, "長い件名") {
		t.Fatalf("subject (%d runes, err %v): %.80q", utf8.RuneCountInString(subj), err, subj)
	}
	for _, line := range strings.Split(string(got), "\n") {
		if len(line) > 998 {
			t.Fatalf("a header line of %d octets", len(line))
		}
	}
}

// TestRateLimitSendsTheFirst: when one claim holds more acknowledgements to
// one address than the hourly limit allows, the earliest go out and the
// rest are skipped with the reason, all in that one pass; the rows of the
// claim still waiting their turn do not count as sent.
func TestRateLimitSendsTheFirst(t *testing.T) {
	f := newFixture(t, nil)
	for range 5 {
		f.file(t, "flood@reporter.example", "again", "en", "none")
	}
	w := f.writer(FileDelivery{Dir: t.TempDir()})
	w.RatePerHour = 3
	if n, err := w.Once(context.Background()); err != nil || n != 5 {
		t.Fatalf("once: %d %v", n, err)
	}
	rows, err := f.s.(interface{ SQL() *sql.DB }).SQL().Query(`SELECT state, last_error FROM outbox WHERE recipient = 'flood@reporter.example' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var st, reason string
		if err := rows.Scan(&st, &reason); err != nil {
			t.Fatal(err)
		}
		if st == store.OutboxSkipped && !strings.Contains(reason, "rate limit: 3 ") {
			t.Errorf("skipped without the reason: %q", reason)
		}
		got = append(got, st)
	}
	want := []string{store.OutboxSent, store.OutboxSent, store.OutboxSent, store.OutboxSkipped, store.OutboxSkipped}
	if !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
}
