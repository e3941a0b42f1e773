package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/encoding/japanese"

	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRelayAuthOverSTARTTLS: the relay client authenticates with AUTH
// PLAIN after STARTTLS (against an SMTP server that refuses MAIL before
// AUTH: madoguchi's own submission listener), refuses to send credentials
// in the clear, and renders a Japanese acknowledgement in ISO-2022-JP when
// so configured.
func TestRelayAuthOverSTARTTLS(t *testing.T) {
	relayStore, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "relay.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer relayStore.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("relay-pass"), bcrypt.MinCost)
	creds, err := intake.ParseCredentials([]byte("madoguchi " + string(hash)))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := intake.NewServer(&intake.Backend{Store: relayStore, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Credentials: creds, RequireAuth: true,
		Config: intake.SMTPConfig{Recipients: []string{"reporter@reporter.example"}, MaxMessageBytes: 1 << 20,
			TLS: &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}}}})
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	f := newFixture(t, nil)
	f.file(t, "reporter@reporter.example", "情報漏えいの報告", "ja", "none")
	insecure := &tls.Config{InsecureSkipVerify: true}
	// Credentials without TLS: refused before anything is sent.
	plain := &Relay{Addr: l.Addr().String(), TLS: "none", Username: "madoguchi", Password: "relay-pass"}
	if err := plain.Deliver(context.Background(), "", []string{"reporter@reporter.example"}, []byte("x"), "<x@y>"); err == nil || !IsPermanent(err) {
		t.Fatalf("credentials in the clear: %v", err)
	}
	w := f.writer(&Relay{Addr: l.Addr().String(), TLS: "starttls", TLSConfig: insecure, Username: "madoguchi", Password: "relay-pass"})
	w.Keys = nil
	w.JapaneseCharset = "iso-2022-jp"
	if _, err := w.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 1 {
		t.Fatalf("outbox: %v", st)
	}
	m, err := relayStore.GetMessage(context.Background(), 1)
	if err != nil || !strings.Contains(m.Peer, "auth=madoguchi") {
		t.Fatalf("relayed: %v %+v", err, m)
	}
	raw := string(m.Raw)
	if !strings.Contains(raw, "charset=iso-2022-jp") || strings.ContainsFunc(raw, func(r rune) bool { return r > 127 }) {
		t.Fatalf("not 7-bit ISO-2022-JP:\n%s", raw)
	}
	_, body, _ := strings.Cut(raw, "\r\n\r\n")
	text, err := japanese.ISO2022JP.NewDecoder().String(body)
	if err != nil || !strings.Contains(text, "受け付けました") {
		t.Fatalf("body: %v %q", err, text)
	}
	subjLine := raw[strings.Index(raw, "Subject:"):]
	subjLine = subjLine[:strings.Index(subjLine, "\r\nDate:")]
	dec := &mime.WordDecoder{CharsetReader: func(cs string, in io.Reader) (io.Reader, error) {
		return japanese.ISO2022JP.NewDecoder().Reader(in), nil
	}}
	subj, err := dec.DecodeHeader(strings.ReplaceAll(strings.TrimPrefix(subjLine, "Subject:"), "\r\n", ""))
	if err != nil || !strings.Contains(subj, "情報漏えいの報告") {
		t.Fatalf("subject: %v %q", err, subj)
	}
}
