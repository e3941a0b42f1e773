package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TokenServer is an OAuth2 token endpoint for tests: the client
// credentials grant (client "madoguchi", secret "app-secret"), refresh
// tokens that rotate on every use and can be revoked, the device
// authorization grant (RFC 8628, signed in on the second poll), and RFC
// 7662 introspection, which an OAuth2-only Dovecot asks. Access tokens
// live Lifetime (a few seconds in the tests, so that they expire during a
// run) and belong to User.
type TokenServer struct {
	*httptest.Server
	User     string
	Lifetime time.Duration

	mu       sync.Mutex
	access   map[string]time.Time // token -> expiry
	refresh  map[string]bool      // live refresh tokens
	devices  map[string]int       // device code -> polls
	Issued   int                  // access tokens issued
	Rotated  int                  // refresh tokens rotated
	Refusals int                  // token requests refused
}

// NewTokenServer starts one for the test.
func NewTokenServer(t testing.TB, user string) *TokenServer {
	ts := &TokenServer{User: user, Lifetime: 3 * time.Second, access: map[string]time.Time{}, refresh: map[string]bool{}, devices: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", ts.token)
	mux.HandleFunc("POST /introspect", ts.introspect)
	mux.HandleFunc("POST /device", ts.device)
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func randomToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewRefreshToken issues a refresh token (as a sign-in would have).
func (ts *TokenServer) NewRefreshToken() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rt := randomToken("rt-")
	ts.refresh[rt] = true
	return rt
}

// RevokeAll revokes every refresh token and access token.
func (ts *TokenServer) RevokeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.refresh = map[string]bool{}
	ts.access = map[string]time.Time{}
}

// Counts returns how many access tokens were issued and refresh tokens
// rotated.
func (ts *TokenServer) Counts() (issued, rotated int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.Issued, ts.Rotated
}

func oauthError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (ts *TokenServer) grant(w http.ResponseWriter, refresh string) {
	at := randomToken("at-")
	ts.access[at] = time.Now().Add(ts.Lifetime)
	ts.Issued++
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(ts.Lifetime.Seconds())}
	if refresh != "" {
		out["refresh_token"] = refresh
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (ts *TokenServer) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if id != "madoguchi" {
		ts.Refusals++
		oauthError(w, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		if secret != "app-secret" {
			ts.Refusals++
			oauthError(w, "invalid_client")
			return
		}
		ts.grant(w, "")
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if !ts.refresh[rt] {
			ts.Refusals++
			oauthError(w, "invalid_grant")
			return
		}
		delete(ts.refresh, rt) // rotated: the old one is spent
		next := randomToken("rt-")
		ts.refresh[next] = true
		ts.Rotated++
		ts.grant(w, next)
	case "urn:ietf:params:oauth:grant-type:device_code":
		dc := r.PostForm.Get("device_code")
		n, ok := ts.devices[dc]
		if !ok {
			oauthError(w, "invalid_grant")
			return
		}
		ts.devices[dc] = n + 1
		if n == 0 {
			oauthError(w, "authorization_pending")
			return
		}
		delete(ts.devices, dc)
		rt := randomToken("rt-")
		ts.refresh[rt] = true
		ts.grant(w, rt)
	default:
		oauthError(w, "unsupported_grant_type")
	}
}

func (ts *TokenServer) device(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	dc := randomToken("dc-")
	ts.devices[dc] = 0
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"device_code": dc, "user_code": "WDJB-MJHT",
		"verification_uri": ts.URL + "/activate", "expires_in": 60, "interval": 1})
}

// introspect answers 200 always (Dovecot takes an error status for a
// failure of its own), active or not.
func (ts *TokenServer) introspect(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	ts.mu.Lock()
	exp, ok := ts.access[r.PostForm.Get("token")]
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok || time.Now().After(exp) {
		_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "username": ts.User})
}

// AccessToken mints an access token for User directly (the harness's own
// logins).
func (ts *TokenServer) AccessToken() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	at := randomToken("at-")
	ts.access[at] = time.Now().Add(time.Hour)
	return at
}
