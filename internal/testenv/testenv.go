package testenv

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// GPG is a GnuPG home of its own in a temp directory.
type GPG struct {
	t    testing.TB
	Home string
}

// NewGPG makes a GnuPG home; without gpg the test is skipped (and fails
// under CI, which installs it).
func NewGPG(t testing.TB) *GPG {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gpg not installed (CI installs gnupg)")
		}
		t.Skip("gpg not installed")
	}
	g := &GPG{t: t, Home: t.TempDir()}
	// gpg starts an agent per home; stop it before the home is removed
	// (cleanups run last-registered first), or it lingers after the test.
	t.Cleanup(func() { KillGPGAgent(g.Home) })
	return g
}

// KillGPGAgent stops the gpg-agent (and any other GnuPG daemon) of home.
func KillGPGAgent(home string) {
	_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
}

// Run runs gpg in batch mode with an empty passphrase and trusting every
// key (the tests decide trust themselves).
func (g *GPG) Run(stdin []byte, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", g.Home, "--batch", "--yes", "--trust-model", "always",
		"--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// Must is Run that fails the test on an error and returns stdout.
func (g *GPG) Must(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, errOut, err := g.Run(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %v: %v\n%s", args, err, errOut)
	}
	return []byte(out)
}

// Fingerprint returns the fingerprint of the first key matching uid.
func (g *GPG) Fingerprint(uid string) string {
	g.t.Helper()
	for _, l := range strings.Split(string(g.Must(nil, "--with-colons", "--list-keys", uid)), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			return strings.Split(l, ":")[9]
		}
	}
	g.t.Fatalf("no key for %s", uid)
	return ""
}

// NewKey makes an Ed25519 signing key for uid ("Name <addr>") and, with
// encrypt, a Cv25519 encryption subkey.
func (g *GPG) NewKey(uid string, encrypt bool) {
	g.t.Helper()
	g.Must(nil, "--quick-gen-key", uid, "ed25519", "sign,cert", "1y")
	if encrypt {
		g.Must(nil, "--quick-add-key", g.Fingerprint(uid), "cv25519", "encr", "1y")
	}
}

// PostgresDSN creates a fresh database for the test and drops it after.
// PostgreSQL runs when MADOGUCHI_TEST_POSTGRES is set (a DSN, or "1" for
// postgres://postgres@127.0.0.1:5432/postgres) and always under CI;
// otherwise the test is skipped.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	env := os.Getenv("MADOGUCHI_TEST_POSTGRES")
	if env == "" && os.Getenv("CI") == "" {
		t.Skip("PostgreSQL: set MADOGUCHI_TEST_POSTGRES=1 (CI always runs it)")
	}
	admin := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if env != "" && env != "1" {
		admin = env
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("madoguchi_t_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if db, err := sql.Open("pgx", admin); err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			_ = db.Close()
		}
	})
	return strings.Replace(admin, "/postgres?", "/"+name+"?", 1)
}

// Need skips the test when the program is missing, and fails it under CI,
// which installs every program the tests use: a skip there would be a test
// that cannot fail.
func Need(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (CI installs it)", program)
		}
		t.Skipf("%s not installed", program)
	}
}

// OpenPGPMIME checks a PGP/MIME message (RFC 3156) as its receiver's gpg
// would: a multipart/signed one's detached signature over its first part
// byte for byte, or a multipart/encrypted one's decryption and signature,
// each with exit status 0 and a good signature. It returns the signed
// MIME entity and whether the message was encrypted.
func (g *GPG) OpenPGPMIME(raw []byte) (entity []byte, encrypted bool) {
	g.t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		g.t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	body, _ := io.ReadAll(m.Body)
	// A Maildir holds lines ending in LF; what was signed ended in CRLF.
	body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	switch mt {
	case "multipart/encrypted":
		start := bytes.Index(body, []byte("-----BEGIN PGP MESSAGE"))
		end := bytes.Index(body, []byte("-----END PGP MESSAGE-----"))
		if start < 0 || end < start {
			g.t.Fatal("multipart/encrypted without a PGP message")
		}
		plain, stderr, err := g.Run(body[start:end+25], "--decrypt")
		if err != nil || !strings.Contains(stderr, "Good signature") {
			g.t.Fatalf("gpg --decrypt: %v\n%s", err, stderr)
		}
		return []byte(plain), true
	case "multipart/signed":
		delim := []byte("--" + params["boundary"])
		first := bytes.Index(body, delim) + len(delim) + 2
		end := bytes.Index(body[first:], append([]byte("\r\n"), delim...))
		if first < len(delim)+2 || end < 0 {
			g.t.Fatal("multipart/signed without its parts")
		}
		entity = body[first : first+end]
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		_, _ = mr.NextPart()
		sigPart, err := mr.NextPart()
		if err != nil {
			g.t.Fatal(err)
		}
		sig, _ := io.ReadAll(sigPart)
		dir := g.t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "p"), entity, 0o600)
		_ = os.WriteFile(filepath.Join(dir, "p.asc"), sig, 0o600)
		if _, stderr, err := g.Run(nil, "--verify", filepath.Join(dir, "p.asc"), filepath.Join(dir, "p")); err != nil || !strings.Contains(stderr, "Good signature") {
			g.t.Fatalf("gpg --verify: %v\n%s", err, stderr)
		}
		return entity, false
	}
	g.t.Fatalf("neither signed nor encrypted: %s", mt)
	return nil, false
}
