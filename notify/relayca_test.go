package notify

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// internalCA makes, with OpenSSL, a CA and a certificate for 127.0.0.1
// signed by it, as a site's own PKI would.
func internalCA(t *testing.T) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	testenv.Need(t, "openssl")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
		"-days", "2", "-subj", "/CN=Example Site CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=relay.site.example")
	_ = os.WriteFile(filepath.Join(dir, "ext"), []byte("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"), 0o600)
	run("x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "relay.pem", "-days", "2", "-extfile", "ext")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ = os.ReadFile(filepath.Join(dir, "ca.pem"))
	return caPEM, cert
}

// TestRelayWithInternalCA: a site relay whose certificate an internal CA
// signed is refused with the system's roots alone and trusted with
// notify.relay_ca_file; a file without a certificate is an error.
func TestRelayWithInternalCA(t *testing.T) {
	caPEM, cert := internalCA(t)
	relayStore, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "relay.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer relayStore.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := intake.NewServer(&intake.Backend{Store: relayStore, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: intake.SMTPConfig{Recipients: []string{"reporter@reporter.example"}, MaxMessageBytes: 1 << 20,
			TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}})
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	addr := l.Addr().String()
	msg := []byte("From: csirt@example.org\r\nTo: reporter@reporter.example\r\nSubject: x\r\n\r\nx\r\n")

	system, err := RelayTLSConfig(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Addr: addr, TLS: "starttls", TLSConfig: system}
	if err := r.Deliver(context.Background(), "", []string{"reporter@reporter.example"}, msg, "<a@x>"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("with the system's roots alone: %v, want a certificate error", err)
	}
	site, err := RelayTLSConfig(addr, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	r.TLSConfig = site
	if err := r.Deliver(context.Background(), "", []string{"reporter@reporter.example"}, msg, "<b@x>"); err != nil {
		t.Fatalf("with the site CA: %v", err)
	}
	if _, err := RelayTLSConfig(addr, []byte("not a certificate")); err == nil {
		t.Fatal("a CA file without a certificate accepted")
	}
}
