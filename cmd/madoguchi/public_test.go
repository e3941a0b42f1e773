package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/app"
	"github.com/madoguchi/madoguchi/internal/testenv"
)

// teamKeyConfig writes a configuration with the corpus team key.
func teamKeyConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := filepath.Abs("../../testdata/corpus/keys/team-secret-unprotected.asc")
	p := filepath.Join(dir, "m.yaml")
	cfg := "store:\n  dsn: " + filepath.Join(dir, "m.db") + "\ncrypto:\n  team_key_files: [" + key + "]\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func gpgVerify(t *testing.T, signed []byte) string {
	t.Helper()
	home := t.TempDir()
	pub, _ := os.ReadFile("../../testdata/corpus/keys/team-public.asc")
	imp := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	imp.Stdin = bytes.NewReader(pub)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg import: %v\n%s", err, out)
	}
	v := exec.Command("gpg", "--homedir", home, "--batch", "--verify")
	v.Stdin = bytes.NewReader(signed)
	out, err := v.CombinedOutput()
	if err != nil {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	return string(out)
}

// TestRFC2350Command: the profile prints, and with --sign it is
// clearsigned so that gpg verifies it with the team key.
func TestRFC2350Command(t *testing.T) {
	cfg := teamKeyConfig(t)
	out, errOut, code := runCLI(t, "--config", cfg, "rfc2350")
	if code != 0 || !strings.Contains(out, "2.8. Public Keys") || !strings.Contains(out, "7. Disclaimers") {
		t.Fatalf("rfc2350: %d %s\n%s", code, errOut, out)
	}
	testenv.Need(t, "gpg")
	out, errOut, code = runCLI(t, "--config", cfg, "rfc2350", "--sign")
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PGP SIGNED MESSAGE-----") {
		t.Fatalf("rfc2350 --sign: %d %s", code, errOut)
	}
	if v := gpgVerify(t, []byte(out)); !strings.Contains(v, "Good signature") {
		t.Fatal(v)
	}
	nokey := writeConfig(t, "sqlite", filepath.Join(t.TempDir(), "m.db"))
	if _, errOut, code := runCLI(t, "--config", nokey, "rfc2350", "--sign"); code != 1 || !strings.Contains(errOut, "team_key_files") {
		t.Fatalf("--sign without a key: %d %s", code, errOut)
	}
}

// TestPublicEndpoints: the profile, its signed form, security.txt and the
// key are served without a token; the signatures verify with gpg and the
// key imports.
func TestPublicEndpoints(t *testing.T) {
	testenv.Need(t, "gpg")
	e, err := app.LoadEnv(teamKeyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	e.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := e.LoadKeys()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.PublicHandlers(mux, func() *crypto.Keys { return keys })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) []byte {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	if b := get("/rfc2350.txt"); !bytes.Contains(b, []byte("1. Document Information")) {
		t.Fatalf("rfc2350.txt: %s", b)
	}
	gpgVerify(t, get("/rfc2350.txt.asc"))
	if ja := get("/rfc2350.ja.txt.asc"); !strings.Contains(string(ja), "文書情報") {
		t.Fatalf("Japanese profile: %s", ja)
	} else {
		gpgVerify(t, ja)
	}
	sec := get("/.well-known/security.txt")
	gpgVerify(t, sec)
	for _, f := range []string{"Contact: mailto:csirt@example.org", "Expires: ", "Encryption: https://csirt.example.org/pgp-key.asc", "Canonical: ", "Policy: ", "Preferred-Languages: en, ja"} {
		if !bytes.Contains(sec, []byte(f)) {
			t.Errorf("security.txt lacks %q", f)
		}
	}
	// WKD: the URL GnuPG's own tool computes for the team address serves the
	// key, which imports; another hash is 404.
	out, err := exec.Command("/usr/lib/gnupg/gpg-wks-client", "--print-wkd-url", "csirt@example.org").Output()
	if err != nil {
		t.Fatalf("gpg-wks-client: %v", err)
	}
	u, _ := url.Parse(strings.TrimSpace(string(out)))
	for _, p := range []string{u.Path, strings.Replace(u.Path, "/example.org/hu/", "/hu/", 1)} {
		wkdKey := get(p)
		home := t.TempDir()
		imp := exec.Command("gpg", "--homedir", home, "--batch", "--import")
		imp.Stdin = bytes.NewReader(wkdKey)
		if out, err := imp.CombinedOutput(); err != nil || !strings.Contains(string(out), "csirt@example.org") {
			t.Fatalf("WKD key at %s: %v\n%s", p, err, out)
		}
	}
	get("/.well-known/openpgpkey/policy")
	if resp, err := http.Get(srv.URL + "/.well-known/openpgpkey/hu/ybndrfg8ejkmcpqxot1uwisza345h769"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("another hash: %v %v", resp, err)
	}
	key := get("/pgp-key.asc")
	home := t.TempDir()
	imp := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	imp.Stdin = bytes.NewReader(key)
	if out, err := imp.CombinedOutput(); err != nil || !strings.Contains(string(out), "imported") {
		t.Fatalf("import of /pgp-key.asc: %v\n%s", err, out)
	}
}

// TestPublicDocumentsSignedOnce: a flood of GETs costs no signatures: the
// signed documents are signed once (per day and keys) and served from
// then on; a key reload signs anew.
func TestPublicDocumentsSignedOnce(t *testing.T) {
	e, err := app.LoadEnv(teamKeyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	e.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := e.LoadKeys()
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[crypto.Keys]
	current.Store(keys)
	mux := http.NewServeMux()
	e.PublicHandlers(mux, current.Load)
	get := func(path string) string {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	paths := []string{"/rfc2350.txt.asc", "/.well-known/security.txt"}
	first := map[string]string{}
	for _, p := range paths {
		first[p] = get(p)
	}
	// A signature made a second later would carry another time.
	time.Sleep(1100 * time.Millisecond)
	start := time.Now()
	for range 200 {
		for _, p := range paths {
			if get(p) != first[p] {
				t.Fatalf("%s signed again", p)
			}
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("400 GETs took %v", d)
	}
	reloaded, _ := e.LoadKeys()
	current.Store(reloaded)
	for _, p := range paths {
		if get(p) == first[p] {
			t.Errorf("%s not signed anew after a key reload", p)
		}
	}
}
