package notify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// TestRepliesFollowTheEncryptionRules: staff's reply to an encrypted
// report goes encrypted to the reporter's known key (gpg decrypts it, the
// words inside only); without a key it is never sent in clear (a dead
// letter saying why); to a plain report it is signed.
func TestRepliesFollowTheEncryptionRules(t *testing.T) {
	ctx := context.Background()
	g := testenv.NewGPG(t)
	g.NewKey("Reporter <enc@reporter.example>", true)
	pub := g.Must(nil, "--armor", "--export", "enc@reporter.example")
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	g.Must(teamPub, "--import")
	f := newFixture(t, pub)
	f.file(t, "enc@reporter.example", "Encrypted: compromised host", "en", "ok")
	f.file(t, "nokey@reporter.example", "Encrypted too", "en", "ok")
	f.file(t, "plain@reporter.example", "Plain report", "ja", "none")
	words := "The host 192.0.2.44 was cleaned."
	for _, tk := range []string{"CSIRT#2026-000001", "CSIRT#2026-000002", "CSIRT#2026-000003"} {
		if _, err := f.s.QueueReply(ctx, tk, "alice", words, "csirt.example.org"); err != nil {
			t.Fatal(err)
		}
	}
	res := "Closed."
	if err := f.s.UpdateIncident(ctx, "CSIRT#2026-000003", store.Change{Status: vocab.StatusResolved, Resolution: &res, Actor: "alice", Domain: "csirt.example.org"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ := f.s.GetIncident(ctx, "CSIRT#2026-000002")
	for _, o := range d.Outbox {
		if o.Kind == store.OutboxReply && (o.State != store.OutboxDead || !strings.Contains(o.LastError, "came encrypted")) {
			t.Fatalf("reply without a key: %s %s", o.State, o.LastError)
		}
	}
	ents, _ := os.ReadDir(dir)
	var encrypted, signed int
	for _, e := range ents {
		raw, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if _, enc := g.OpenPGPMIME(raw); !enc { // gpg verifies each, or the test fails
			signed++
			continue
		}
		encrypted++
		if bytes.Contains(raw, []byte("192.0.2.44")) {
			t.Fatal("the reply's words outside the encryption")
		}
	}
	// Encrypted: the acknowledgement and the reply to enc@. Signed: the
	// acknowledgements to nokey@ and plain@, the reply and the resolution
	// notice to plain@.
	if encrypted != 2 || signed != 4 {
		t.Fatalf("encrypted %d, signed %d (of %d files)", encrypted, signed, len(ents))
	}
}
