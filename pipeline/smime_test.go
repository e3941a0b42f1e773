package pipeline

import (
	"context"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// TestSMIMESignerCertificateHarvested: a good S/MIME signature bound to
// From keeps the signer's certificate (for encrypted answers) with an
// event; a signature by a certificate of another address keeps nothing.
func TestSMIMESignerCertificateHarvested(t *testing.T) {
	ctx := context.Background()
	p := testenv.NewPKI(t)
	sm, err := crypto.LoadSMIME(p.Read("team.pem"), p.Read("team.key"), nil, p.Read("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	proc := &Processor{Store: s, Keys: &crypto.Keys{SMIME: sm}, ParseOpts: parse.Options{OwnAddresses: []string{"csirt@example.org"}, TicketPrefix: "CSIRT"},
		AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute, Log: quietLogger()}
	sign := func(from, signer string) []byte {
		return p.Run([]byte("Content-Type: text/plain\r\n\r\nScan from 198.51.100.5.\r\n"), "cms", "-sign", "-signer", signer+".pem", "-inkey", signer+".key",
			"-from", from, "-to", "csirt@example.org", "-subject", "Scan")
	}
	res := spoolAndProcess(t, proc, &store.Message{Channel: store.ChannelSMTP, MailFrom: "cert@partner.example", Raw: sign("cert@partner.example", "partner")})
	der, err := s.Certificate(ctx, "cert@partner.example")
	blk, _ := pem.Decode(p.Read("partner.pem"))
	if err != nil || string(der) != string(blk.Bytes) {
		t.Fatalf("the partner's certificate: %v", err)
	}
	inc, _ := s.GetIncident(ctx, res.Ticket)
	if e := inc.Events[len(inc.Events)-1]; e.Kind != "certificate" || !strings.Contains(e.Detail, "cert@partner.example") {
		t.Fatalf("no certificate event: %+v", inc.Events)
	}
	if !strings.Contains(string(inc.ReportList[0].Report), `"method":"smime"`) || !strings.Contains(string(inc.ReportList[0].Report), `"signer_email":"cert@partner.example"`) {
		t.Fatalf("report: %s", inc.ReportList[0].Report)
	}
	// Signed by the partner's certificate, From someone else: a mismatch.
	spoolAndProcess(t, proc, &store.Message{Channel: store.ChannelSMTP, MailFrom: "mallory@evil.example", Raw: sign("mallory@evil.example", "partner")})
	if _, err := s.Certificate(ctx, "mallory@evil.example"); err == nil {
		t.Fatal("a certificate kept for an address it does not carry")
	}
}
