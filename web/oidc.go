package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDC signs staff in with an OpenID Connect provider (authorization code
// flow with PKCE, a nonce and a state): whoever the provider says is one
// of Staff (the verified e-mail claim) gets a session like a token's. The
// provider is discovered at the first sign-in, not at start, so that a
// provider that is down does not stop the gateway.
type OIDC struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	// Staff are the e-mail addresses that may sign in (lower-case).
	Staff []string
	// HTTPClient talks to the provider (nil: one with a 10 s timeout).
	HTTPClient *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

const oidcCookie = "madoguchi_oidc"

func (o *OIDC) client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// setup discovers the provider (once it answers) and returns the OAuth2
// configuration and the ID token verifier.
func (o *OIDC) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx = oidc.ClientContext(ctx, o.client())
	if o.provider == nil {
		p, err := oidc.NewProvider(ctx, o.Issuer)
		if err != nil {
			return nil, nil, err
		}
		o.provider = p
	}
	cfg := &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL,
		Endpoint: o.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"}}
	return cfg, o.provider.Verifier(&oidc.Config{ClientID: o.ClientID}), nil
}

// staff is the member a verified e-mail address is, "" for nobody.
func (o *OIDC) staff(email string) string {
	email = strings.ToLower(email)
	o.mu.Lock()
	defer o.mu.Unlock()
	if slices.Contains(o.Staff, email) {
		return email
	}
	return ""
}

// SetStaff replaces the staff (a reload): sessions of addresses no longer
// in it end at their next request.
func (o *OIDC) SetStaff(emails []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Staff = emails
}

// oidcLogin sends the browser to the provider, with a state, a nonce and
// a PKCE verifier in a short-lived cookie (SameSite=Lax: the provider's
// redirect back is a cross-site navigation, which a Strict cookie would
// not follow).
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	cfg, _, err := s.OIDC.setup(r.Context())
	if err != nil {
		s.oidcFail(w, r, http.StatusBadGateway, "the sign-in provider cannot be reached", err)
		return
	}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: state + "." + nonce + "." + verifier, Path: "/staff/oidc/",
		MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(r)})
	http.Redirect(w, r, cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusSeeOther)
}

// oidcCallback takes the provider's answer: the state must be the
// cookie's, the ID token must verify (issuer, audience, expiry, the
// nonce) and carry a verified e-mail address of Staff. The session is
// then made as for a token; the page it answers with moves on by itself
// (a same-site navigation, which the Strict session cookie follows).
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(oidcCookie)
	parts := []string{}
	if err == nil {
		parts = strings.Split(c.Value, ".")
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/staff/oidc/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(r)})
	if len(parts) != 3 || r.URL.Query().Get("state") == "" || r.URL.Query().Get("state") != parts[0] {
		s.oidcFail(w, r, http.StatusBadRequest, "the sign-in came back without its state: start again", nil)
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		s.oidcFail(w, r, http.StatusForbidden, "the provider refused the sign-in: "+e, nil)
		return
	}
	ctx := oidc.ClientContext(r.Context(), s.OIDC.client())
	cfg, verifier, err := s.OIDC.setup(ctx)
	if err != nil {
		s.oidcFail(w, r, http.StatusBadGateway, "the sign-in provider cannot be reached", err)
		return
	}
	tok, err := cfg.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		s.oidcFail(w, r, http.StatusForbidden, "the provider did not take the sign-in code", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil || idt.Nonce != parts[1] {
		s.oidcFail(w, r, http.StatusForbidden, "the provider's ID token does not verify", err)
		return
	}
	var claims struct {
		Email    string `json:"email"`
		Verified bool   `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil || !claims.Verified || s.OIDC.staff(claims.Email) == "" {
		s.oidcFail(w, r, http.StatusForbidden, "this account is not one of the staff (a verified e-mail address of http.oidc.staff)", err)
		return
	}
	who := s.OIDC.staff(claims.Email)
	if err := s.startSession(w, r, who, "oidc:"+who); err != nil {
		code, msg := s.status(err)
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/staff/"><title>Signed in</title><p><a href="/staff/" id="continue">Continue</a></p>`))
}

func (s *Server) oidcFail(w http.ResponseWriter, r *http.Request, code int, msg string, err error) {
	if err != nil && s.Log != nil {
		s.Log.Warn("OIDC sign-in", "err", err)
	}
	w.WriteHeader(code)
	s.page(w, r, "error.html", &pageData{Error: msg})
}

// oidcLine tells whether a session's line is an OIDC sign-in that still
// names a member of the staff.
func (s *Server) oidcLine(line, actor string) bool {
	who, ok := strings.CutPrefix(line, "oidc:")
	return ok && s.OIDC != nil && who == actor && s.OIDC.staff(who) != ""
}
