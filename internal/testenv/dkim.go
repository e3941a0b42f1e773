package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DKIM makes DKIM keys with python3-dkim's dknewkey, publishes them in a
// DNS of the test's, and signs messages with its dkimsign.
type DKIM struct {
	t   testing.TB
	dns *DNS
	dir string
}

// NewDKIM is skipped without python3-dkim (and fails under CI, which
// installs it).
func NewDKIM(t testing.TB, d *DNS) *DKIM {
	t.Helper()
	Need(t, "dkimsign") // python3-dkim
	return &DKIM{t: t, dns: d, dir: t.TempDir()}
}

// Key makes a key (ktype rsa or ed25519) and publishes it as
// SELECTOR._domainkey.DOMAIN.
func (k *DKIM) Key(selector, domain, ktype string) {
	k.t.Helper()
	name := filepath.Join(k.dir, selector+"."+domain)
	if out, err := exec.Command("dknewkey", "--ktype", ktype, name).CombinedOutput(); err != nil {
		k.t.Fatalf("dknewkey: %v\n%s", err, out)
	}
	rec, err := os.ReadFile(name + ".dns")
	if err != nil {
		k.t.Fatal(err)
	}
	k.dns.TXT(selector+"._domainkey."+domain, strings.TrimSpace(string(rec)))
}

// Sign returns msg with the DKIM-Signature of SELECTOR._domainkey.DOMAIN
// on top (alg rsa-sha256 or ed25519-sha256, as the key).
func (k *DKIM) Sign(msg, selector, domain, alg string) []byte {
	k.t.Helper()
	cmd := exec.Command("dkimsign", "--signalg", alg, selector, domain, filepath.Join(k.dir, selector+"."+domain+".key"))
	cmd.Stdin = strings.NewReader(msg)
	signed, err := cmd.Output() // the message with its signature on top
	if err != nil {
		k.t.Fatalf("dkimsign: %v", err)
	}
	return signed
}
