package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PKI is a certificate world made by OpenSSL in a directory of the
// test's: a CA the team trusts ("ca"), one nobody trusts ("other-ca"), the
// team's certificate ("team", csirt@example.org) and correspondents':
// "partner" (cert@partner.example), "ecpartner" (ECDSA P-256,
// ec@partner.example), "stranger" (issued by other-ca) and "someone"
// (someone@else.example). NAME.pem and NAME.key each.
type PKI struct {
	t   testing.TB
	Dir string
}

// Run runs openssl in the directory and returns its output; a non-zero
// exit fails the test.
func (p *PKI) Run(stdin []byte, args ...string) []byte {
	p.t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = p.Dir
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// Path is a file of the directory.
func (p *PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// Read reads a file of the directory.
func (p *PKI) Read(name string) []byte {
	b, err := os.ReadFile(p.Path(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// CA makes a self-signed CA.
func (p *PKI) CA(name string) {
	p.Run(nil, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name+".key", "-out", name+".pem", "-days", "30",
		"-subj", "/CN="+name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
}

// Cert makes a certificate for email issued by ca; key is "rsa:2048" or
// "ec" (P-256).
func (p *PKI) Cert(name, email, ca, key string) {
	args := []string{"req", "-newkey", key, "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name + "/emailAddress=" + email}
	if key == "ec" {
		args = append(args[:2], append([]string{"ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"}, args[3:]...)...)
	}
	p.Run(nil, args...)
	ext := "subjectAltName=email:" + email + "\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n"
	if err := os.WriteFile(p.Path(name+".ext"), []byte(ext), 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.Run(nil, "x509", "-req", "-in", name+".csr", "-CA", ca+".pem", "-CAkey", ca+".key", "-CAcreateserial", "-out", name+".pem", "-days", "30", "-extfile", name+".ext")
}

// NewPKI makes the world (skipped without openssl, failing under CI).
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	Need(t, "openssl")
	p := &PKI{t: t, Dir: t.TempDir()}
	p.CA("ca")
	p.CA("other-ca")
	p.Cert("team", "csirt@example.org", "ca", "rsa:2048")
	p.Cert("partner", "cert@partner.example", "ca", "rsa:2048")
	p.Cert("ecpartner", "ec@partner.example", "ca", "ec")
	p.Cert("stranger", "x@stranger.example", "other-ca", "rsa:2048")
	p.Cert("someone", "someone@else.example", "ca", "rsa:2048")
	return p
}

// Verifies is `openssl cms -verify`'s verdict on a message against the
// "ca" CA: its exit status, at a time (zero: now).
func (p *PKI) Verifies(msg []byte, at time.Time) bool {
	args := []string{"cms", "-verify", "-CAfile", p.Path("ca.pem"), "-purpose", "smimesign", "-out", os.DevNull}
	if !at.IsZero() {
		args = append(args, "-attime", strconv.FormatInt(at.Unix(), 10))
	}
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(msg)
	return cmd.Run() == nil
}
