package intake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// TestIMAPOversizeNeverMovedUnfiled: with A (small), B (over the limit)
// and C (small) in INBOX, A and C are spooled and moved (or flagged); B
// stays in INBOX, unmoved and unseen, across passes and a restart, and
// staff get one notice (filed like any message) naming the mailbox, UID,
// size, From and Subject. A later raise of the limit files B.
func TestIMAPOversizeNeverMovedUnfiled(t *testing.T) {
	for _, mode := range []string{"move", "seen"} {
		t.Run(mode, func(t *testing.T) {
			d := startDovecot(t)
			s := openStore(t)
			cfg := IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", Password: "secret", Mailbox: "INBOX",
				PollInterval: 200 * time.Millisecond, MaxMessage: 2000}
			processed := "INBOX" // seen mode: everything stays, flagged
			if mode == "move" {
				cfg.ProcessedMailbox, processed = "Processed", "Processed"
			}
			big := "From: Big Sender <big@reporter.example>\r\nTo: csirt@example.org\r\nSubject: =?utf-8?q?huge_packet_capture_=E2=80=93_urgent?=\r\nMessage-ID: <big@reporter.example>\r\n\r\n" +
				strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 80)
			d.Append("INBOX", report(1))
			d.Append("INBOX", big)
			d.Append("INBOX", report(3))
			waitHandled := func(r *pollerRun, spooled int) {
				t.Helper()
				waitUntil(t, "the pass", 10*time.Second, func() bool { return spooledCount(t, s) == spooled })
				// Two more passes: nothing else may happen in them.
				p := r.passes.Load()
				waitUntil(t, "two more passes", 10*time.Second, func() bool { return r.passes.Load() >= p+2 })
			}
			checkBHeld := func() {
				t.Helper()
				n, seen := d.Count("INBOX")
				switch mode {
				case "move":
					if pn, _ := d.Count("Processed"); n != 1 || seen != 0 || pn != 2 {
						t.Fatalf("INBOX %d (%d seen), Processed %d: want B alone, unseen, in INBOX", n, seen, pn)
					}
				case "seen":
					if n != 3 || seen != 2 {
						t.Fatalf("INBOX %d, %d seen: want A and C seen, B not", n, seen)
					}
				}
			}
			r := runPoller(t, s, cfg)
			waitHandled(r, 3) // A, C and the notice
			checkBHeld()
			r.stop()
			var notice *store.Message
			for id := int64(1); id <= 3; id++ {
				m, err := s.GetMessage(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(m.Peer, "oversize") {
					notice = m
				}
			}
			if notice == nil {
				t.Fatal("no notice spooled for the held message")
			}
			for _, want := range []string{"UID:         2", "limit 2000", "Big Sender <big@reporter.example>", "huge packet capture – urgent", "csirt@", "INBOX", "MAILER-DAEMON"} {
				if !strings.Contains(string(notice.Raw), want) {
					t.Errorf("notice lacks %q:\n%s", want, notice.Raw)
				}
			}

			// Restarted: still held, no second notice.
			r = runPoller(t, s, cfg)
			waitHandled(r, 3)
			checkBHeld()
			r.stop()

			// The limit raised: B is filed, then moved or flagged.
			cfg.MaxMessage = 1 << 20
			r = runPoller(t, s, cfg)
			waitHandled(r, 4)
			r.stop()
			m, err := s.GetMessage(context.Background(), 4)
			if err != nil || string(m.Raw) != big {
				t.Fatalf("B as spooled: %v", err)
			}
			n, seen := d.Count(processed)
			if mode == "move" && n != 3 || mode == "seen" && seen != 3 {
				t.Fatalf("after the raise: %s holds %d (%d seen)", processed, n, seen)
			}
		})
	}
}

// TestSpillUnderItsDirectory: a message over the in-memory limit spills
// to a file under the configured directory (the data directory), not /tmp.
func TestSpillUnderItsDirectory(t *testing.T) {
	dir := t.TempDir()
	s := &spill{limit: 16, dir: dir}
	defer s.Close()
	if _, err := s.Write([]byte(strings.Repeat("x", 64))); err != nil {
		t.Fatal(err)
	}
	if s.file == nil || !strings.HasPrefix(s.file.Name(), dir+"/") {
		t.Fatalf("spilled to %v, want under %s", s.file, dir)
	}
}
