package crypto

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

// madoguchi signs and encrypts; the real GnuPG verifies and decrypts.
func TestOutgoingVerifiedByGnuPG(t *testing.T) {
	gpg := testenv.NewGPG(t).Run
	must := func(stdout, stderr string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("gpg: %v\n%s", err, stderr)
		}
		return stdout
	}
	// A reporter with an encryption key, known to us.
	must(gpg(nil, "--quick-gen-key", "Reporter <reporter@reporter.example>", "ed25519", "sign", "1y"))
	fpr := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(must(gpg(nil, "--with-colons", "--list-keys", "reporter@reporter.example")))
	if fpr == nil {
		t.Fatal("no fingerprint")
	}
	must(gpg(nil, "--quick-add-key", fpr[1], "cv25519", "encr", "1y"))
	reporterPub := []byte(must(gpg(nil, "--armor", "--export", "reporter@reporter.example")))

	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, reporterPub)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	// The public key madoguchi exports imports into gpg.
	pub, err := k.ExportPublic()
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := gpg(pub, "--import")
	if err != nil || !strings.Contains(stderr, "imported") {
		t.Fatalf("import of our exported key: %v\n%s", err, stderr)
	}

	// Clearsigned text (the RFC 2350 profile) verifies.
	cs, err := k.Clearsign([]byte("RFC 2350 profile of Example CSIRT\n\n1. Document Information\n"), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := gpg(cs, "--verify"); err != nil || !strings.Contains(stderr, "Good signature") {
		t.Fatalf("clearsign: %v\n%s", err, stderr)
	}
	tampered := bytes.Replace(cs, []byte("Example"), []byte("Evil"), 1)
	if _, _, err := gpg(tampered, "--verify"); err == nil {
		t.Fatal("gpg accepted a tampered clearsigned text")
	}

	// PGP/MIME signed: gpg verifies the detached signature over the exact
	// bytes of the first part, and our own Unwrap agrees.
	part := Part("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nWe received your report. チケット CSIRT#2026-000001.\r\n")
	ct, body, err := k.SignMIME(part, now)
	if err != nil {
		t.Fatal(err)
	}
	b := regexp.MustCompile(`boundary="([^"]+)"`).FindStringSubmatch(ct)[1]
	pieces := strings.Split(string(body), "--"+b)
	signed := strings.TrimPrefix(pieces[1], "\r\n")
	signed = strings.TrimSuffix(signed, "\r\n")
	sig := pieces[2][strings.Index(pieces[2], "-----BEGIN"):]
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "part"), []byte(signed), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "part.asc"), []byte(sig), 0o600)
	if _, stderr, err := gpg(nil, "--verify", filepath.Join(dir, "part.asc"), filepath.Join(dir, "part")); err != nil || !strings.Contains(stderr, "Good signature") {
		t.Fatalf("PGP/MIME signature: %v\n%s", err, stderr)
	}
	full := "From: Example CSIRT <csirt@example.org>\r\nSubject: ack\r\nMIME-Version: 1.0\r\nContent-Type: " + ct + "\r\n\r\n" + string(body)
	if res := Unwrap([]byte(full), k, Limits{}, now); res.Signature != vocab.SigGood || !bytes.Contains(res.Cleartext, []byte("CSIRT#2026-000001")) {
		t.Fatalf("our own Unwrap of our signature: %+v", res)
	}

	// PGP/MIME signed and encrypted to the reporter: gpg decrypts it with
	// the reporter's key and finds the team's good signature inside.
	to := k.KeyFor("Reporter@reporter.example", now)
	if len(to) != 1 {
		t.Fatalf("reporter key not found by address: %d", len(to))
	}
	ct, body, err = k.SignEncryptMIME(part, to, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct, "multipart/encrypted") {
		t.Fatal(ct)
	}
	armored := string(body)[strings.Index(string(body), "-----BEGIN PGP MESSAGE"):]
	armored = armored[:strings.Index(armored, "-----END PGP MESSAGE-----")+len("-----END PGP MESSAGE-----")] + "\n"
	out, stderr, err := gpg([]byte(armored), "--decrypt")
	if err != nil || !strings.Contains(stderr, "Good signature") || !strings.Contains(out, "CSIRT#2026-000001") {
		t.Fatalf("gpg --decrypt: %v\n%s\n%s", err, stderr, out)
	}
	if len(k.KeyFor("stranger@elsewhere.example", now)) != 0 {
		t.Fatal("a key for an address nobody gave us")
	}
}

// TestSignWithoutTeamKey: no team key, a clear error, no output.
func TestSignWithoutTeamKey(t *testing.T) {
	k, err := LoadKeys(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.SignMIME(Part("x"), time.Now()); err != ErrNoTeamKey {
		t.Fatalf("SignMIME: %v", err)
	}
	if _, err := k.Clearsign([]byte("x"), time.Now()); err != ErrNoTeamKey {
		t.Fatalf("Clearsign: %v", err)
	}
	if _, err := k.ExportPublic(); err != ErrNoTeamKey {
		t.Fatalf("ExportPublic: %v", err)
	}
}
