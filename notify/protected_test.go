package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

const secretSubject = "Breach at ACME internal-db-07"

// clearHeader is the header of msg as anyone on the path reads it, with
// encoded words decoded.
func clearHeader(t *testing.T, msg []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	dec := new(mime.WordDecoder)
	for k, vs := range m.Header {
		for _, v := range vs {
			d, err := dec.DecodeHeader(v)
			if err != nil {
				d = v
			}
			b.WriteString(k + ": " + d + "\n")
		}
	}
	return b.String()
}

// TestEncryptedReportSubjectNeverInClear: the acknowledgement of an
// encrypted report names it neutrally in its outer Subject; the real
// subject travels only inside the encryption as a protected header (RFC
// 9788), which gpg shows after decrypting; without the reporter's key it
// is not repeated at all. Staff alerts and webhooks leave it out unless
// they go encrypted or the operator marked them internal.
func TestEncryptedReportSubjectNeverInClear(t *testing.T) {
	g := testenv.NewGPG(t)
	g.NewKey("Reporter <enc@reporter.example>", true)
	g.NewKey("Duty <duty@example.org>", true)
	known := g.Must(nil, "--armor", "--export", "enc@reporter.example", "duty@example.org")
	f := newFixture(t, known)
	ctx := context.Background()
	teamPub, _ := f.keys.ExportPublic()
	g.Must(teamPub, "--import")

	var mu sync.Mutex
	var hooks []WebhookPayload
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p WebhookPayload
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		hooks = append(hooks, p)
		mu.Unlock()
	}))
	defer hook.Close()

	file := func(sender, duty string) {
		t.Helper()
		f.n++
		id, _ := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte{byte(f.n)}})
		mid := "<enc" + string(rune('a'+f.n)) + "@reporter.example>"
		js := `{"message_id":"` + mid + `","subject":"` + secretSubject + `","from":"` + sender + `","language":"en","decryption":{"status":"ok"},"thread":{"references":[]},"tlp":null,
			"classification":{"taxonomy":"intrusions","type":"system-compromise","confidence":0.9}}`
		if _, err := f.s.File(ctx, &store.Filing{SpoolID: id, MessageID: mid, Sender: sender, Subject: secretSubject, ReportJSON: []byte(js),
			Ack:   &store.AckRequest{Recipient: sender, Domain: "csirt.example.org"},
			Alert: &store.AlertRequest{DutyAddress: duty, WebhookURL: hook.URL, Domain: "csirt.example.org"}}); err != nil {
			t.Fatal(err)
		}
	}
	file("enc@reporter.example", "duty@example.org")    // both keys known: encrypted ack and alert
	file("plain@reporter.example", "night@example.org") // no keys: signed ack, clear alert
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 4 {
		t.Fatalf("%d messages written, want 4", len(files))
	}
	var sawProtected bool
	for _, p := range files {
		msg, _ := os.ReadFile(p)
		hdr := clearHeader(t, msg)
		if strings.Contains(hdr, "ACME") {
			t.Errorf("%s: the encrypted report's subject in a clear header:\n%s", filepath.Base(p), hdr)
		}
		encrypted := bytes.Contains(msg, []byte("multipart/encrypted"))
		if !encrypted {
			if bytes.Contains(msg, []byte("ACME")) {
				t.Errorf("%s: the subject of an encrypted report in an unencrypted message:\n%s", filepath.Base(p), msg)
			}
			continue
		}
		arm := regexp.MustCompile(`(?s)-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----`).Find(msg)
		plain, stderr, err := g.Run(arm, "--decrypt")
		if err != nil {
			t.Fatalf("gpg --decrypt: %v\n%s", err, stderr)
		}
		inner, err := mail.ReadMessage(strings.NewReader(plain))
		if err != nil {
			t.Fatalf("inner part: %v\n%s", err, plain)
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(inner.Header.Get("Subject"))
		if !strings.Contains(subj, secretSubject) || !strings.Contains(inner.Header.Get("Content-Type"), `hp="cipher"`) {
			t.Errorf("%s: protected headers: Subject %q, Content-Type %q", filepath.Base(p), subj, inner.Header.Get("Content-Type"))
		}
		// Our own reader (any RFC 9788 client) shows the real subject
		// from the protected header: the team's key can read what it sent.
		if res := crypto.Unwrap(msg, f.keys, crypto.Limits{}, time.Now()); res.Decryption != vocab.DecOK || res.ProtectedSubject == "" || !strings.Contains(res.ProtectedSubject, secretSubject) {
			t.Errorf("%s: read back: %s, protected subject %q", filepath.Base(p), res.Decryption, res.ProtectedSubject)
		}
		sawProtected = true
		if strings.Contains(hdr, "To: <enc@reporter.example>") && !strings.Contains(hdr, "Re: your encrypted report") {
			t.Errorf("outer subject of the encrypted acknowledgement:\n%s", hdr)
		}
	}
	if !sawProtected {
		t.Fatal("no message went encrypted")
	}
	mu.Lock()
	for _, h := range hooks {
		if h.Subject != "" || !h.Encrypted {
			t.Errorf("webhook to a destination not marked internal: %+v", h)
		}
	}
	if len(hooks) != 2 {
		t.Fatalf("%d webhooks, want 2", len(hooks))
	}
	hooks = nil
	mu.Unlock()

	// Marked internal, the webhook carries the subject.
	file("plain@reporter.example", "")
	w.AlertInternal = true
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooks) != 1 || hooks[0].Subject != secretSubject {
		t.Fatalf("internal webhook: %+v", hooks)
	}
}
