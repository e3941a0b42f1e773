package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/madoguchi/madoguchi/store"
)

// Metrics are the OAuth2 clients' Prometheus metrics: one set per daemon,
// shared by every Source.
type Metrics struct {
	Errors *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (none when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_oauth2_errors_total", Help: "Failed OAuth2 token requests, by account and error (invalid_grant, invalid_client, … or unavailable).",
	}, []string{"account", "error"})}
	if reg != nil {
		reg.MustRegister(m.Errors)
	}
	return m
}

// Config is one account's OAuth2 client.
type Config struct {
	// Account names the mailbox or the relay: the store's key for its
	// refresh token, the metric's label, what the log names.
	Account       string
	TokenURL      string
	DeviceAuthURL string
	ClientID      string
	ClientSecret  string
	Scopes        []string
	// RefreshGrant: the refresh-token grant; otherwise client
	// credentials (ClientSecret required).
	RefreshGrant bool
	// Seed is the refresh_token_file's content, "" without one: the
	// refresh token the first time, or again when the operator writes a
	// new one there.
	Seed string
}

// TokenStore keeps refresh tokens (store.Store).
type TokenStore interface {
	GetOAuth2Token(ctx context.Context, account string) (store.OAuth2Token, error)
	SetOAuth2Token(ctx context.Context, account string, t store.OAuth2Token) error
}

// PermanentError is a credential the token endpoint refuses (revoked,
// wrong, unknown client): nothing works until the operator acts, or the
// endpoint changes its mind.
type PermanentError struct {
	Code string // the OAuth2 error code
	Err  error
}

func (e *PermanentError) Error() string { return "oauth2: " + e.Code + ": " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// renewBefore is how long before its expiry a token is renewed.
const renewBefore = time.Minute

// Source hands out access tokens for one account.
type Source struct {
	cfg     Config
	store   TokenStore
	log     *slog.Logger
	metrics *Metrics
	// HTTP is the client for the token endpoint (nil: one with a 30 s
	// timeout).
	HTTP *http.Client
	Now  func() time.Time

	mu      sync.Mutex
	tok     *oauth2.Token
	refused string // the code of the last permanent refusal, "" when working
}

// NewSource returns the token source of cfg.
func NewSource(cfg Config, st TokenStore, log *slog.Logger, m *Metrics) *Source {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Source{cfg: cfg, store: st, log: log, metrics: m}
}

// Account is the account the source is for.
func (s *Source) Account() string { return s.cfg.Account }

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Token returns a valid access token, fetching a new one when the last is
// within renewBefore of its expiry.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.AccessToken != "" && (s.tok.Expiry.IsZero() || s.tok.Expiry.After(s.now().Add(renewBefore))) {
		return s.tok.AccessToken, nil
	}
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	tok, err := s.fetch(ctx)
	if err != nil {
		return "", s.failed(err)
	}
	if s.refused != "" {
		s.log.Info("oauth2: token granted again; resuming", "account", s.cfg.Account)
		s.refused = ""
	}
	s.tok = tok
	return tok.AccessToken, nil
}

// Invalidate drops the current access token: the server refused it, and
// the next Token fetches another.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.tok = nil
	s.mu.Unlock()
}

func (s *Source) fetch(ctx context.Context) (*oauth2.Token, error) {
	if !s.cfg.RefreshGrant {
		cc := clientcredentials.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, TokenURL: s.cfg.TokenURL, Scopes: s.cfg.Scopes}
		return cc.Token(ctx)
	}
	rt, err := s.refreshToken(ctx)
	if err != nil {
		return nil, err
	}
	conf := s.oauth2Config()
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		// Another daemon sharing the store (every one runs the relay
		// client) may have rotated the token since it was read: once
		// more with the store's, if it changed.
		if again, rerr := s.refreshToken(ctx); rerr == nil && again != rt {
			rt = again
			tok, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		}
	}
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken != "" && tok.RefreshToken != rt {
		// Rotated: keep the new one before using the access token, or a
		// crash now would leave only the spent one.
		if err := s.store.SetOAuth2Token(ctx, s.cfg.Account, store.OAuth2Token{RefreshToken: tok.RefreshToken, SeedSHA256: seedHash(s.cfg.Seed)}); err != nil {
			return nil, fmt.Errorf("oauth2: keeping the rotated refresh token: %w", err)
		}
	}
	return tok, nil
}

func (s *Source) oauth2Config() *oauth2.Config {
	return &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, Scopes: s.cfg.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: s.cfg.TokenURL, DeviceAuthURL: s.cfg.DeviceAuthURL}}
}

func seedHash(seed string) string {
	if seed == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// refreshToken is the store's refresh token of the account, seeded from
// refresh_token_file the first time and whenever that file changes.
func (s *Source) refreshToken(ctx context.Context) (string, error) {
	t, err := s.store.GetOAuth2Token(ctx, s.cfg.Account)
	switch {
	case err == nil && (s.cfg.Seed == "" || t.SeedSHA256 == seedHash(s.cfg.Seed)):
		return t.RefreshToken, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return "", err
	case s.cfg.Seed == "":
		return "", &PermanentError{Code: "no_refresh_token", Err: errors.New("no refresh token: run madoguchi oauth2 login " + s.cfg.Account + " or set refresh_token_file")}
	}
	if err := s.store.SetOAuth2Token(ctx, s.cfg.Account, store.OAuth2Token{RefreshToken: s.cfg.Seed, SeedSHA256: seedHash(s.cfg.Seed)}); err != nil {
		return "", err
	}
	return s.cfg.Seed, nil
}

// failed classifies err, counts it and logs a refusal once (when the
// account goes from working to refused, or from one refusal to another).
func (s *Source) failed(err error) error {
	var re *oauth2.RetrieveError
	var pe *PermanentError
	code := "unavailable"
	switch {
	case errors.As(err, &pe):
		code = pe.Code
	case errors.As(err, &re):
		switch re.ErrorCode {
		case "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "access_denied":
			err, code = &PermanentError{Code: re.ErrorCode, Err: err}, re.ErrorCode
		}
	}
	s.metrics.Errors.WithLabelValues(s.cfg.Account, code).Inc()
	if errors.As(err, &pe) {
		if s.refused != code {
			s.log.Error("oauth2: the token endpoint refuses the credential; this account is stopped until a token is granted",
				"account", s.cfg.Account, "error", code, "detail", err.Error())
			s.refused = code
		}
		return err
	}
	return fmt.Errorf("oauth2: %s: %w", s.cfg.Account, err)
}

// Login runs the device authorization grant (RFC 8628): it asks the
// endpoint for a code, tells the operator through show where to enter it,
// polls until they have, and keeps the refresh token in the store.
func Login(ctx context.Context, cfg Config, st TokenStore, hc *http.Client, show func(verificationURI, userCode string)) error {
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	s := &Source{cfg: cfg}
	conf := s.oauth2Config()
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return fmt.Errorf("oauth2: device authorization: %w", err)
	}
	uri := da.VerificationURIComplete
	if uri == "" {
		uri = da.VerificationURI
	}
	show(uri, da.UserCode)
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return fmt.Errorf("oauth2: waiting for the sign-in: %w", err)
	}
	if tok.RefreshToken == "" {
		return errors.New("oauth2: the endpoint granted no refresh token (ask for offline_access, or use the client-credentials grant)")
	}
	return st.SetOAuth2Token(ctx, cfg.Account, store.OAuth2Token{RefreshToken: tok.RefreshToken, SeedSHA256: seedHash(cfg.Seed)})
}
