package crypto

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/rawmime"
	"github.com/madoguchi/madoguchi/internal/testenv"
)

// crcLine is the armor checksum line that GnuPG 2.2 needs to find the end
// of the base64 data.
var crcLine = regexp.MustCompile(`(?m)^=[A-Za-z0-9+/]{4}\r?\n-----END PGP`)

// GnuPG 2.2 (Debian 12) reads an armor without a CRC24 line wrongly when
// the base64 needs no "=" padding: it reads the END line as data, prints
// "Good signature" and exits 2. An RSA-3072 signature is such a length;
// the Ed25519 team key of the corpus mostly is not, which is how the
// fault went unseen. Every armored output must verify or import with exit
// status 0.
func TestArmorVerifiesWithGnuPG22(t *testing.T) {
	g := testenv.NewGPG(t)
	const uid = "Team RSA <csirt@example.org>"
	g.Must(nil, "--quick-gen-key", uid, "rsa3072", "sign", "1y")
	g.Must(nil, "--quick-add-key", g.Fingerprint(uid), "rsa3072", "encr", "1y")
	sec := g.Must(nil, "--armor", "--export-secret-keys", uid)
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	for name, keyData := range map[string][]byte{"rsa3072": sec, "ed25519": team} {
		k, err := LoadKeys([][]byte{keyData}, nil, g.Must(nil, "--armor", "--export", uid))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.ExportPublic()
		if err != nil {
			t.Fatal(err)
		}
		if !crcLine.Match(pub) {
			t.Errorf("%s: exported key has no CRC24 line", name)
		}
		if _, stderr, err := g.Run(pub, "--import"); err != nil {
			t.Fatalf("%s: gpg --import of the exported key: %v\n%s", name, err, stderr)
		}
		now := time.Now()
		for i := range 4 {
			text := fmt.Appendf(nil, "RFC 2350 profile %d\n", i)
			cs, err := k.Clearsign(text, now.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !crcLine.Match(cs) {
				t.Errorf("%s: clearsigned text %d has no CRC24 line:\n%s", name, i, cs)
			}
			if _, stderr, err := g.Run(cs, "--verify"); err != nil {
				t.Fatalf("%s: gpg --verify of clearsigned text %d: %v (the exit status must be 0)\n%s\n%s", name, i, err, stderr, cs)
			}
		}
		// The detached signature of a PGP/MIME acknowledgement.
		part := Part("Content-Type: text/plain\r\n\r\nCSIRT#2026-000001\r\n")
		_, body, err := k.SignMIME(part, now)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?s)(-----BEGIN PGP SIGNATURE-----.*-----END PGP SIGNATURE-----)`).FindSubmatch(body)
		if m == nil || !crcLine.Match(m[1]) {
			t.Fatalf("%s: detached signature without CRC24 line:\n%s", name, body)
		}
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "part"), rawmime.Canonical(part), 0o600)
		_ = os.WriteFile(filepath.Join(dir, "part.asc"), m[1], 0o600)
		if _, stderr, err := g.Run(nil, "--verify", filepath.Join(dir, "part.asc"), filepath.Join(dir, "part")); err != nil {
			t.Fatalf("%s: gpg --verify of the detached signature: %v\n%s", name, err, stderr)
		}
		// Encrypted to the RSA key: gpg decrypts with exit status 0.
		_, enc, err := k.SignEncryptMIME(part, k.KeyFor("csirt@example.org", now), now)
		if err != nil {
			t.Fatal(err)
		}
		m = regexp.MustCompile(`(?s)(-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----)`).FindSubmatch(enc)
		if m == nil || !crcLine.Match(m[1]) {
			t.Fatalf("%s: encrypted message without CRC24 line", name)
		}
		if _, stderr, err := g.Run(m[1], "--decrypt"); err != nil {
			t.Fatalf("%s: gpg --decrypt: %v\n%s", name, err, stderr)
		}
	}
}
