package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// Staff sign in from a browser with their token (GET /staff/login) and
// get a session: a random cookie value whose SHA-256 names a row in the
// store (so a stolen database holds no usable cookie), with who signed
// in, the token file line they used, a form token (CSRF) and an expiry.
// A session ends at its expiry, at sign-out, and as soon as its token
// line is no longer in the tokens file (a revoked token, reloaded on
// SIGHUP) or, for a sign-in with OpenID Connect, its address is no longer
// one of the staff.

const sessionCookie = "madoguchi_session"

type sessionKey struct{}

// sessionOf is the request's session (set by the session middleware).
func sessionOf(r *http.Request) store.Session {
	s, _ := r.Context().Value(sessionKey{}).(store.Session)
	return s
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

func (s *Server) ttl() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return 12 * time.Hour
}

func (s *Server) secure(r *http.Request) bool { return r.TLS != nil || s.BehindTLSProxy }

// login checks the token of the sign-in form and starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	token := r.PostFormValue("token")
	name, line := s.tokens().CheckLine(token)
	if name == "" {
		w.WriteHeader(http.StatusUnauthorized)
		s.page(w, r, "login.html", &pageData{Error: "invalid"})
		return
	}
	if err := s.startSession(w, r, name, line); err != nil {
		code, msg := s.status(err)
		http.Error(w, msg, code)
		return
	}
	http.Redirect(w, r, "/staff/", http.StatusSeeOther)
}

// startSession stores a session for who (signed in with line) and sets
// its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, who, line string) error {
	cookie, now := random(), s.now()
	sess := store.Session{ID: sessionID(cookie), Actor: who, TokenLine: line, CSRF: random(), CreatedAt: now, ExpiresAt: now.Add(s.ttl())}
	if err := s.Store.CreateSession(r.Context(), sess); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/staff/", Expires: sess.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	return nil
}

// logout ends the session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	_ = s.Store.DeleteSession(r.Context(), sessionOf(r).ID)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/staff/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	http.Redirect(w, r, "/staff/login", http.StatusSeeOther)
}

// session lets requests with a live session in (others go to the sign-in
// form), and refuses a POST whose csrf field is not the session's (403).
func (s *Server) session(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.liveSession(r)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				code, msg := s.status(err)
				http.Error(w, msg, code)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/staff/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 128<<10)
			if got := r.PostFormValue("csrf"); subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
				http.Error(w, "the form's csrf token is missing or wrong", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		ctx := context.WithValue(context.WithValue(r.Context(), ctxKey{}, sess.Actor), sessionKey{}, sess)
		h(w, r.WithContext(ctx))
	})
}

// liveSession is the request's session while it lasts and its token line
// is still in the tokens file; a session whose token was revoked is
// deleted.
func (s *Server) liveSession(r *http.Request) (store.Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return store.Session{}, store.ErrNotFound
	}
	sess, err := s.Store.GetSession(r.Context(), sessionID(c.Value))
	if err != nil {
		return sess, err
	}
	if s.tokens().LineOwner(sess.TokenLine) != sess.Actor && !s.oidcLine(sess.TokenLine, sess.Actor) {
		_ = s.Store.DeleteSession(r.Context(), sess.ID)
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}
