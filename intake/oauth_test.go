package intake

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// syncBuffer is a log a test reads while the poller writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// oauthErrors reads madoguchi_oauth2_errors_total{account,error}.
func oauthErrors(t *testing.T, reg prometheus.Gatherer, account, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "madoguchi_oauth2_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["account"] == account && labels["error"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestIMAPOAuth2AgainstDovecot: a Dovecot that takes nothing but bearer
// tokens (validated by introspection at a token endpoint the test runs)
// is polled with refresh tokens that rotate on every use and access
// tokens that expire during the run; the rotated token is kept in the
// store and a restarted poller uses it (the seed is spent); a revoked one
// stops the mailbox with one log line and the metric, and a new sign-in
// resumes it without a restart.
func TestIMAPOAuth2AgainstDovecot(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt")
	ts.Lifetime = 2 * time.Second
	d := testenv.StartDovecotOAuth2(t, ts.URL+"/introspect", ts.AccessToken)
	s := openStore(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	seed := ts.NewRefreshToken()
	const account = "imap:csirt@dovecot"
	reg := prometheus.NewRegistry()
	metrics := oauth.NewMetrics(reg)
	newSource := func() *oauth.Source {
		return oauth.NewSource(oauth.Config{Account: account, TokenURL: ts.URL + "/token", ClientID: "madoguchi", RefreshGrant: true, Seed: seed}, s, log, metrics)
	}
	cfg := IMAPConfig{Address: d.Addr, TLS: "none", Username: "csirt", OAuth2: newSource(), Mailbox: "INBOX",
		ProcessedMailbox: "Processed", PollInterval: 10 * time.Minute}
	d.Append("INBOX", report(1))
	r := runPoller(t, s, cfg)
	waitUntil(t, "the first message, with a bearer token", 10*time.Second, func() bool {
		n, _ := d.Count("Processed")
		return spooledCount(t, s) == 1 && n == 1
	})
	// The access token expires; the next session (the poller
	// reconnects) logs in with a fresh one, from the rotated refresh
	// token.
	r.stop()
	time.Sleep(ts.Lifetime + 200*time.Millisecond) // let the token expire on the clock
	d.Append("INBOX", report(2))
	r = runPoller(t, s, cfg)
	waitUntil(t, "the second message after a re-login", 20*time.Second, func() bool { return spooledCount(t, s) == 2 })
	r.stop()
	if issued, rotated := ts.Counts(); rotated < 2 {
		t.Fatalf("%d refresh tokens rotated (%d access tokens), want at least 2\n%s", rotated, issued, logs.String())
	}
	kept, err := s.GetOAuth2Token(context.Background(), account)
	if err != nil || kept.RefreshToken == seed {
		t.Fatalf("store keeps %+v %v, want the rotated token", kept, err)
	}

	// A restart (a new source over the same store and seed file): the
	// spent seed is not used again.
	cfg.OAuth2 = newSource()
	d.Append("INBOX", report(3))
	r = runPoller(t, s, cfg)
	waitUntil(t, "the third message after a restart", 10*time.Second, func() bool { return spooledCount(t, s) == 3 })

	// Revoked: the next login fails; one log line, the metric.
	r.stop()
	ts.RevokeAll()
	d.Append("INBOX", report(4))
	r = runPoller(t, s, cfg)
	waitUntil(t, "the refusal", 20*time.Second, func() bool { return oauthErrors(t, reg, account, "invalid_grant") >= 2 })
	if n := strings.Count(logs.String(), "refuses the credential"); n != 1 || strings.Contains(logs.String(), "session ended") {
		t.Fatalf("%d log lines for the refusal, want 1 and no other warning:\n%s", n, logs.String())
	}
	if spooledCount(t, s) != 3 {
		t.Fatal("a message was spooled without a valid token")
	}
	// A new sign-in (what oauth2 login stores) resumes the mailbox.
	if err := s.SetOAuth2Token(context.Background(), account, store.OAuth2Token{RefreshToken: ts.NewRefreshToken(), SeedSHA256: kept.SeedSHA256}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the mailbox resumed", 30*time.Second, func() bool { return spooledCount(t, s) == 4 })
	r.stop()
	if !strings.Contains(logs.String(), "token granted again") {
		t.Errorf("no log line for the resumption:\n%s", logs.String())
	}
}
