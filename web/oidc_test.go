package web

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// provider is an OpenID Connect provider for the tests: discovery, keys,
// an authorization endpoint that signs in whoever the test says at once,
// and a token endpoint that checks the code, the client and PKCE.
type provider struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey
	mu   sync.Mutex
	user struct {
		email    string
		verified bool
	}
	badNonce bool
	codes    map[string]struct{ nonce, challenge string }
}

func newProvider(t *testing.T) *provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{key: key, codes: map[string]struct{ nonce, challenge string }{}}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "madoguchi" || q.Get("code_challenge_method") != "S256" || !strings.Contains(q.Get("scope"), "openid") {
			http.Error(w, "bad request", 400)
			return
		}
		code := random()
		p.mu.Lock()
		p.codes[code] = struct{ nonce, challenge string }{q.Get("nonce"), q.Get("code_challenge")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		p.mu.Lock()
		c, found := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		user, badNonce := p.user, p.badNonce
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if id != "madoguchi" || secret != "s3cret" || !found || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			http.Error(w, `{"error":"invalid_grant"}`, 400)
			return
		}
		nonce := c.nonce
		if badNonce {
			nonce = "replayed"
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		claims, _ := json.Marshal(map[string]any{"iss": p.srv.URL, "aud": "madoguchi", "sub": "u-" + user.email, "exp": time.Now().Add(time.Hour).Unix(),
			"iat": time.Now().Unix(), "nonce": nonce, "email": user.email, "email_verified": user.verified})
		jws, _ := signer.Sign(claims)
		idToken, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
	})
	return p
}

// TestOIDCSignIn: a member of the staff signs in through the provider and
// works under their address; someone else, an unverified address, a
// replayed nonce and a forged state are refused; removing the address
// from the staff ends the session.
func TestOIDCSignIn(t *testing.T) {
	e := setup(t)
	p := newProvider(t)
	e.web.OIDC = &OIDC{Issuer: p.srv.URL, ClientID: "madoguchi", ClientSecret: "s3cret", RedirectURL: e.srv.URL + "/staff/oidc/callback",
		Staff: []string{"alice@example.org"}}
	mux := http.NewServeMux()
	e.web.Register(mux)
	e.srv.Config.Handler = mux
	signIn := func(email string, verified, badNonce bool) (*http.Client, int, string) {
		t.Helper()
		p.mu.Lock()
		p.user.email, p.user.verified, p.badNonce = email, verified, badNonce
		p.mu.Unlock()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.Get(e.srv.URL + "/staff/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return c, resp.StatusCode, string(b)
	}
	c, code, body := signIn("Alice@example.org", true, false)
	if code != 200 || !strings.Contains(body, `url=/staff/`) {
		t.Fatalf("alice: %d %s", code, body)
	}
	list := func(c *http.Client) (int, string) {
		resp, err := c.Get(e.srv.URL + "/staff/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, page := list(c); code != 200 || !strings.Contains(page, "<b>alice@example.org</b>") {
		t.Fatalf("alice's list: %d", code)
	}
	for _, tc := range []struct {
		email              string
		verified, badNonce bool
		want               string
	}{
		{"mallory@example.org", true, false, "not one of the staff"},
		{"alice@example.org", false, false, "not one of the staff"},
		{"alice@example.org", true, true, "does not verify"},
	} {
		if _, code, body := signIn(tc.email, tc.verified, tc.badNonce); code != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%+v: %d %s", tc, code, body)
		}
	}
	// A callback with a state that is not the browser's own.
	resp, err := c.Get(e.srv.URL + "/staff/oidc/callback?code=x&state=forged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged state: %d", resp.StatusCode)
	}
	// Alice leaves the staff: her session ends.
	e.web.OIDC.SetStaff(nil)
	if code, page := list(c); code != 200 || !strings.Contains(page, `id="token"`) {
		t.Fatalf("after alice left the staff: %d", code)
	}
}
