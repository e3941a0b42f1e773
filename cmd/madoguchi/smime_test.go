package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/web"
)

// TestServeSMIME: through the daemon configured with crypto.smime, a
// partner's report signed and encrypted with S/MIME (by OpenSSL) is
// decrypted and verified (method smime), its signer's certificate kept,
// and the acknowledgement goes back encrypted to it: openssl cms
// -decrypt opens it with the partner's key and -verify accepts the team's
// signature inside.
func TestServeSMIME(t *testing.T) {
	p := testenv.NewPKI(t)
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	token, line := web.NewToken("alice")
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("http:\n  listen: 127.0.0.1:0\n"), []byte("http:\n  listen: 127.0.0.1:0\n  staff_tokens_file: "+dir+"/tokens\n"), 1)
	b = append(b, fmt.Sprintf("team:\n  name: Example CSIRT\n  address: csirt@example.org\ncrypto:\n  smime:\n    cert_file: %s\n    key_file: %s\n    trust_anchors_file: %s\nauth:\n  disabled: true\n",
		p.Path("team.pem"), p.Path("team.key"), p.Path("ca.pem"))...)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	signed := p.Run([]byte("Content-Type: text/plain\r\n\r\nOur sensors saw 198.51.100.77 scanning.\r\n"), "cms", "-sign", "-signer", "partner.pem", "-inkey", "partner.key",
		"-from", "cert@partner.example", "-to", "csirt@example.org", "-subject", "Scan notice")
	msg := p.Run(signed, "cms", "-encrypt", "-aes-256-gcm", "-from", "cert@partner.example", "-to", "csirt@example.org", "-subject", "Scan notice", "team.pem")
	msg = append([]byte("Message-ID: <smime1@partner.example>\r\n"), msg...)
	if err := smtp.SendMail(d.smtp, nil, "cert@partner.example", []string{"csirt@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	var ack []byte
	waitFor(t, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		for _, e := range ents {
			raw, _ := os.ReadFile(filepath.Join(dir, "outbox", e.Name()))
			if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil && m.Header.Get("To") == "<cert@partner.example>" {
				ack = raw
				return true
			}
		}
		return false
	})
	out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json")
	var list []struct {
		Ticket string `json:"ticket"`
	}
	_ = json.Unmarshal([]byte(out), &list)
	if len(list) != 1 {
		t.Fatalf("incidents: %s", out)
	}
	out, _, _ = runCLI(t, "--config", cfg, "incidents", "show", list[0].Ticket, "--json")
	var det struct {
		Reports []struct {
			Report struct {
				Decryption struct{ Status, Method string }
				Signature  struct {
					Status, Method string
					Email          string `json:"signer_email"`
				}
				Text string
			} `json:"report"`
		} `json:"report_list"`
		Events []struct{ Kind string } `json:"events"`
	}
	_ = json.Unmarshal([]byte(out), &det)
	r := det.Reports[0].Report
	if r.Decryption.Status != "ok" || r.Decryption.Method != "smime" || r.Signature.Status != "good" || r.Signature.Method != "smime" ||
		r.Signature.Email != "cert@partner.example" || !bytes.Contains([]byte(r.Text), []byte("198.51.100.77")) {
		t.Fatalf("report: %+v", r)
	}
	kept := false
	for _, e := range det.Events {
		kept = kept || e.Kind == "certificate"
	}
	if !kept {
		t.Fatalf("no certificate event: %+v", det.Events)
	}
	if bytes.Contains(ack, []byte(list[0].Ticket+" as")) {
		t.Fatal("the acknowledgement's text is readable outside the encryption")
	}
	plain := p.Run(ack, "cms", "-decrypt", "-recip", "partner.pem", "-inkey", "partner.key")
	if !p.Verifies(plain, time.Time{}) || !bytes.Contains(plain, []byte("multipart/signed")) {
		t.Fatalf("the acknowledgement, decrypted:\n%s", plain)
	}

	// Staff answer: the kept certificate makes the reply possible (an
	// encrypted report is never answered in clear), and it goes encrypted.
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.http+"/api/v1/incidents/"+strings.Replace(list[0].Ticket, "#", "-", 1)+"/replies",
		strings.NewReader(`{"text":"We blocked 198.51.100.77 at our border."}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reply: %d", resp.StatusCode)
	}
	var reply []byte
	waitFor(t, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		for _, e := range ents {
			raw, _ := os.ReadFile(filepath.Join(dir, "outbox", e.Name()))
			if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil && strings.Contains(m.Header.Get("Message-Id"), ".reply.") {
				reply = raw
				return true
			}
		}
		return false
	})
	if bytes.Contains(reply, []byte("198.51.100.77")) {
		t.Fatal("the reply's words outside the encryption")
	}
	if plain := p.Run(reply, "cms", "-decrypt", "-recip", "partner.pem", "-inkey", "partner.key"); !p.Verifies(plain, time.Time{}) {
		t.Fatalf("the reply, decrypted:\n%s", plain)
	}
}
