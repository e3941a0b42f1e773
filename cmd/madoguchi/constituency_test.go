package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/web"
)

// TestConstituentNotices: through the daemon, a report naming IPs of two
// constituents and a domain of a third gives three notices, each with
// only its own constituent's indicators, each signed by the team key and,
// where the contact has a key file, encrypted to it: gpg verifies and
// decrypts them (exit status 0). A TLP:RED report's notice is held until
// staff send it through the API; SIGHUP reloads the constituents file.
func TestConstituentNotices(t *testing.T) {
	testenv.Need(t, "gpg")
	dir := t.TempDir()
	g := testenv.NewGPG(t)
	g.NewKey("Beta CERT <cert@beta.example>", true)
	if err := os.WriteFile(filepath.Join(dir, "beta.asc"), g.Must(nil, "--armor", "--export", "cert@beta.example"), 0o600); err != nil {
		t.Fatal(err)
	}
	teamPub, _ := os.ReadFile("../../testdata/corpus/keys/team-public.asc")
	g.Must(teamPub, "--import")
	teamKey, _ := filepath.Abs("../../testdata/corpus/keys/team-secret-unprotected.asc")
	constituents := `constituents:
  - id: acme
    name: ACME Corp
    networks: [192.0.2.0/25]
    contacts: [{address: security@acme.example, language: ja}]
  - id: beta
    name: Beta ISP
    networks: ["198.51.100.0/24", "2001:db8:b::/48"]
    contacts: [{address: cert@beta.example, key_file: beta.asc}]
  - id: gamma
    name: Gamma Inc
    domains: [gamma.example]
    contacts: [{address: soc@gamma.example}]
`
	consFile := filepath.Join(dir, "constituents.yaml")
	if err := os.WriteFile(consFile, []byte(constituents), 0o600); err != nil {
		t.Fatal(err)
	}
	token, line := web.NewToken("alice")
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig(t, dir)
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("http:\n  listen: 127.0.0.1:0\n"), []byte("http:\n  listen: 127.0.0.1:0\n  staff_tokens_file: "+dir+"/tokens\n"), 1)
	b = append(b, fmt.Sprintf("team:\n  name: Example CSIRT\n  address: csirt@example.org\ncrypto:\n  team_key_files: [%s]\nconstituency:\n  file: %s\n  aggregate_window: 0s\n", teamKey, consFile)...)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := runCLI(t, "--config", cfg, "config", "check"); code != 0 || !strings.Contains(stderr, "constituency.file: 3 constituents") {
		t.Fatalf("config check: %d\n%s\n%s", code, stderr, out)
	}
	d := startDaemon(t, cfg)
	send := func(subject, body string) {
		t.Helper()
		msg := "From: Reporter <reporter@reporter.example>\r\nTo: csirt@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" +
			strings.ReplaceAll(subject, " ", ".") + "@reporter.example>\r\n\r\n" + body
		if err := smtp.SendMail(d.smtp, nil, "reporter@reporter.example", []string{"csirt@example.org"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	outbox := filepath.Join(dir, "outbox")
	notices := func() map[string][]byte {
		out := map[string][]byte{}
		ents, _ := os.ReadDir(outbox)
		for _, e := range ents {
			raw, _ := os.ReadFile(filepath.Join(outbox, e.Name()))
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err == nil && m.Header.Get("Auto-Submitted") == "auto-generated" {
				out[strings.Trim(m.Header.Get("To"), "<>")] = raw
			}
		}
		return out
	}
	send("Attack from our neighbours", "We were scanned by 192.0.2.7 and 198.51.100.9 (also 2001:db8:b::10),\r\n"+
		"and phished from hxxp://login.gamma[.]example/x. 203.0.113.1 is nobody's.\r\n")
	waitFor(t, func() bool { return len(notices()) == 3 })
	want := map[string]struct {
		own, others []string
		encrypted   bool
	}{
		"security@acme.example": {[]string{"192.0.2.7"}, []string{"198.51.100.9", "2001:db8:b::10", "gamma", "203.0.113.1", "reporter@"}, false},
		"cert@beta.example":     {[]string{"198.51.100.9", "2001:db8:b::10"}, []string{"192.0.2.7", "gamma", "203.0.113.1", "reporter@"}, true},
		"soc@gamma.example":     {[]string{"http://login.gamma.example/x"}, []string{"192.0.2.7", "198.51.100.9", "203.0.113.1", "reporter@"}, false},
	}
	for rcpt, raw := range notices() {
		w := want[rcpt]
		text := gpgOpenText(t, g, raw, w.encrypted)
		for _, s := range w.own {
			if !strings.Contains(text, s) {
				t.Errorf("%s: %q not in its notice:\n%s", rcpt, s, text)
			}
		}
		for _, s := range w.others {
			if strings.Contains(text, s) {
				t.Errorf("%s: %q (not its own) in its notice:\n%s", rcpt, s, text)
			}
		}
		if w.encrypted && bytes.Contains(raw, []byte("198.51.100.9")) {
			t.Errorf("%s: an indicator outside the encryption", rcpt)
		}
	}
	// The Japanese contact's notice is in Japanese.
	if m, _ := mail.ReadMessage(bytes.NewReader(notices()["security@acme.example"])); m == nil ||
		!strings.Contains(decodeSubject(m.Header.Get("Subject")), "ACME Corp 様に関するセキュリティ通知（1 件）") {
		t.Fatalf("acme's subject: %v", m.Header.Get("Subject"))
	}
	out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--constituent", "gamma", "--json")
	var list []struct {
		Ticket       string `json:"ticket"`
		Constituents []struct {
			ID string `json:"id"`
		} `json:"constituents"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || len(list[0].Constituents) != 3 {
		t.Fatalf("incidents about gamma: %s", out)
	}

	// TLP:RED: held, then sent by staff.
	send("Red report", "TLP:RED\r\n\r\nThe host 192.0.2.99 is compromised.\r\n")
	var ticket string
	var held int64
	waitFor(t, func() bool {
		out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--constituent", "acme", "--json")
		var l []struct {
			Ticket  string `json:"ticket"`
			Subject string `json:"subject"`
		}
		_ = json.Unmarshal([]byte(out), &l)
		for _, in := range l {
			if in.Subject != "Red report" {
				continue
			}
			out, _, _ = runCLI(t, "--config", cfg, "incidents", "show", in.Ticket, "--json")
			var det struct {
				Outbox []struct {
					ID    int64  `json:"id"`
					Kind  string `json:"kind"`
					State string `json:"state"`
				} `json:"outbox"`
			}
			_ = json.Unmarshal([]byte(out), &det)
			for _, o := range det.Outbox {
				if o.Kind == "notice" && o.State == "held" {
					ticket, held = in.Ticket, o.ID
				}
			}
		}
		return held != 0
	})
	if len(notices()) != 3 {
		t.Fatal("a TLP:RED notice was sent without staff")
	}
	post := func(tok string) int {
		t.Helper()
		url := fmt.Sprintf("http://%s/api/v1/incidents/%s/notices/%d/send", d.http, strings.Replace(ticket, "#", "-", 1), held)
		req, _ := http.NewRequest(http.MethodPost, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("without a valid token: %d", code)
	}
	if code := post(token); code != http.StatusAccepted {
		t.Fatalf("send: %d", code)
	}
	if code := post(token); code != http.StatusConflict {
		t.Fatalf("send twice: %d", code)
	}
	waitFor(t, func() bool {
		n := 0
		ents, _ := os.ReadDir(outbox)
		for _, e := range ents {
			raw, _ := os.ReadFile(filepath.Join(outbox, e.Name()))
			if bytes.Contains(raw, []byte("Auto-Submitted: auto-generated")) {
				n++
			}
		}
		return n == 4
	})

	// SIGHUP: a new constituent takes effect without a restart, and a
	// token removed from the tokens file no longer opens the API.
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("# alice left\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(consFile, []byte(constituents+"  - id: delta\n    networks: [203.0.113.0/24]\n    notify: never\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		m := metrics(t, d)
		return strings.Contains(m, `madoguchi_constituents_reloads_total{result="ok"} 1`) && strings.Contains(m, "madoguchi_constituents 4")
	})
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.http+"/api/v1/incidents", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked token after SIGHUP: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if m := metrics(t, d); !strings.Contains(m, `madoguchi_notices_total{constituent="acme",state="held"} 1`) ||
		!strings.Contains(m, `madoguchi_notices_total{constituent="acme",state="sent"} 2`) {
		t.Fatalf("notice metrics:\n%s", m)
	}
}

// gpgOpenText checks a notice with gpg (testenv.GPG.OpenPGPMIME) and
// returns its text.
func gpgOpenText(t *testing.T, g *testenv.GPG, raw []byte, encrypted bool) string {
	t.Helper()
	entity, enc := g.OpenPGPMIME(raw)
	if enc != encrypted {
		t.Fatalf("encrypted %v, want %v", enc, encrypted)
	}
	part, err := mail.ReadMessage(bytes.NewReader(entity))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(quotedprintable.NewReader(part.Body))
	return string(text)
}

func decodeSubject(s string) string {
	d, _ := new(mime.WordDecoder).DecodeHeader(s)
	return d
}
