package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// TestOAuth2LoginKeepsTheRefreshToken: `oauth2 login ACCOUNT` runs the
// device authorization grant against the token endpoint, shows the code,
// waits for the sign-in and keeps the refresh token in the store.
func TestOAuth2LoginKeepsTheRefreshToken(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	_ = os.WriteFile(cfg, []byte(fmt.Sprintf(`store:
  driver: sqlite
  dsn: %[1]s/m.db
intake:
  imap:
    - address: 127.0.0.1:1143
      tls: none
      username: csirt@example.org
      auth: oauth2
      oauth2:
        token_url: %[2]s/token
        device_auth_url: %[2]s/device
        client_id: madoguchi
      mailbox: INBOX
`, dir, ts.URL)), 0o600)
	out, errOut, code := runCLI(t, "--config", cfg, "oauth2", "login", "csirt@example.org")
	if code != 0 || !strings.Contains(out, "WDJB-MJHT") || !strings.Contains(out, ts.URL+"/activate") || !strings.Contains(out, "signed in") {
		t.Fatalf("oauth2 login: %d\n%s\n%s", code, out, errOut)
	}
	s, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(dir, "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, err := s.GetOAuth2Token(context.Background(), "imap:csirt@example.org@127.0.0.1:1143")
	if err != nil || !strings.HasPrefix(tok.RefreshToken, "rt-") {
		t.Fatalf("stored: %+v %v", tok, err)
	}
	if _, errOut, code := runCLI(t, "--config", cfg, "oauth2", "login", "nobody@example.org"); code != 2 || !strings.Contains(errOut, "no mailbox") {
		t.Fatalf("unknown account: %d %s", code, errOut)
	}
}

// TestOAuth2ConfigChecked: auth: oauth2 without its block, a Microsoft
// provider without a tenant, and both a client secret and a refresh
// token file are configuration errors, each named.
func TestOAuth2ConfigChecked(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	_ = os.WriteFile(cfg, []byte(`intake:
  imap:
    - address: 127.0.0.1:1143
      tls: none
      username: a@example.org
      auth: oauth2
      mailbox: INBOX
    - address: 127.0.0.1:1143
      tls: none
      username: b@example.org
      auth: oauth2
      oauth2: {provider: microsoft, client_id: x}
      mailbox: INBOX
    - address: 127.0.0.1:1143
      tls: none
      username: c@example.org
      auth: oauth2
      oauth2: {provider: google, client_id: x, client_secret_file: s, refresh_token_file: r}
      mailbox: INBOX
`), 0o600)
	_, errOut, code := runCLI(t, "--config", cfg, "config", "check")
	for _, want := range []string{"intake.imap[0].oauth2: missing", "intake.imap[1].oauth2.tenant: missing", "intake.imap[2].oauth2: exactly one"} {
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, want 2 and %q in:\n%s", code, want, errOut)
		}
	}
}
