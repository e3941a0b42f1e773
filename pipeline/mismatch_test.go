package pipeline

import (
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// TestForgedPartnerNotTrusted: a message claiming to be from a partner but
// signed by another known key verifies as a good signature with the signer
// mismatch flagged, and its filing is not trusted (a ticket tag alone does
// not let it into the partner's ticket). The same message signed by the
// partner's own key is trusted.
func TestForgedPartnerNotTrusted(t *testing.T) {
	g := testenv.NewGPG(t)
	gpg := func(stdin string, args ...string) string { return string(g.Must([]byte(stdin), args...)) }
	gpg("", "--quick-gen-key", "Partner CERT <cert@partner.example>", "ed25519", "sign", "1y")
	gpg("", "--quick-gen-key", "Someone Else <other@elsewhere.example>", "ed25519", "sign", "1y")
	ring := gpg("", "--armor", "--export")
	keys, err := crypto.LoadKeys(nil, nil, []byte(ring))
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{AckDomain: "csirt.example.org"}
	for _, c := range []struct {
		signer  string
		trusted bool
	}{{"other@elsewhere.example", false}, {"cert@partner.example", true}} {
		signed := gpg("Please add this to our case.\n", "--clearsign", "--local-user", c.signer)
		raw := "From: CERT <cert@partner.example>\r\nSubject: [CSIRT#2026-000001] update\r\nMessage-ID: <u@partner.example>\r\n\r\n" + signed
		rep, err := Analyze([]byte(raw), keys, crypto.Limits{}, parse.Options{TicketPrefix: "CSIRT"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Signature.Status != "good" || rep.Signature.SignerMismatch == c.trusted {
			t.Fatalf("signed by %s: status %s, mismatch %v", c.signer, rep.Signature.Status, rep.Signature.SignerMismatch)
		}
		f := p.filing(&store.Message{ID: 1, Channel: store.ChannelSMTP, MailFrom: "cert@partner.example", Raw: []byte(raw)}, rep)
		if f.Trusted != c.trusted {
			t.Fatalf("signed by %s: trusted %v", c.signer, f.Trusted)
		}
	}
}
