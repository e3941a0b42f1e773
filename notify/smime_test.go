package notify

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// TestSMIMECorrespondentsAnsweredInSMIME: a correspondent who wrote in
// S/MIME gets the acknowledgement signed with the team's certificate
// (openssl cms -verify exits 0) and, when the report came encrypted and
// their certificate is kept, encrypted to it (openssl cms -decrypt with
// their key, then -verify).
func TestSMIMECorrespondentsAnsweredInSMIME(t *testing.T) {
	ctx := context.Background()
	p := testenv.NewPKI(t)
	f := newFixture(t, nil)
	s, err := crypto.LoadSMIME(p.Read("team.pem"), p.Read("team.key"), nil, p.Read("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f.keys.SMIME = s
	blk, _ := pem.Decode(p.Read("partner.pem"))
	if _, err := f.s.SaveCertificate(ctx, "cert@partner.example", blk.Bytes, "x", time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"cert@partner.example", "someone@else.example"} {
		id, err := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx", i))})
		if err != nil {
			t.Fatal(err)
		}
		js := fmt.Sprintf(`{"message_id":"<s%d@x.example>","from":%q,"subject":"Notice","language":"en","decryption":{"status":"ok","method":"smime"},"signature":{"status":"good","method":"smime"},"thread":{"references":[]},"tlp":null}`, i, who)
		if _, err := f.s.File(ctx, &store.Filing{SpoolID: id, MessageID: fmt.Sprintf("<s%d@x.example>", i), Sender: who, Subject: "Notice",
			ReportJSON: []byte(js), Ack: &store.AckRequest{Recipient: who, Domain: "csirt.example.org"}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	seen := map[string]bool{}
	for _, e := range ents {
		raw, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		ct := m.Header.Get("Content-Type")
		switch to := m.Header.Get("To"); to {
		case "<cert@partner.example>":
			if !strings.HasPrefix(ct, "application/pkcs7-mime; smime-type=enveloped-data") || bytes.Contains(raw, []byte("CSIRT#2026-000001 as")) {
				t.Fatalf("to the partner: %s", ct)
			}
			plain := p.Run(raw, "cms", "-decrypt", "-recip", "partner.pem", "-inkey", "partner.key")
			if !p.Verifies(plain, time.Time{}) {
				t.Fatalf("the decrypted acknowledgement does not verify:\n%s", plain)
			}
		case "<someone@else.example>":
			// No certificate kept: signed, and (the report came
			// encrypted) it says nothing of the report in clear.
			if !strings.HasPrefix(ct, `multipart/signed; protocol="application/pkcs7-signature"`) || !p.Verifies(raw, time.Time{}) {
				t.Fatalf("to someone else: %s", ct)
			}
		default:
			t.Fatalf("to %s", to)
		}
		seen[m.Header.Get("To")] = true
	}
	if len(seen) != 2 {
		t.Fatalf("delivered to %v", seen)
	}
}
