package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

//go:embed templates/*.html openapi.json
var assets embed.FS

// Public is what the public page says of the team.
type Public struct {
	Name, Address, Phone, Hours string
}

// Server is the staff pages and API v1, and the team's public page.
type Server struct {
	Store store.Store
	// Tokens are the staff tokens; TokenSource, when set, replaces it
	// (serve reloads the file on SIGHUP, which ends the sessions of
	// removed tokens).
	Tokens      *Tokens
	TokenSource func() *Tokens
	Team        string
	Public      Public
	Log         *slog.Logger
	// SessionTTL is a browser sign-in's lifetime (0: 12h).
	SessionTTL time.Duration
	// BehindTLSProxy marks session cookies Secure on plain HTTP requests.
	BehindTLSProxy bool
	// Domain is the right-hand side of replies' Message-IDs.
	Domain string
	// KeyKnown tells whether a reply to rcpt, about a report from from,
	// can be encrypted (nil: never):
	// a reply about a report that came encrypted is refused without it.
	KeyKnown func(rcpt, from string) bool
	Now      func() time.Time
	// OIDC, when set, lets staff sign in with an OpenID Connect provider
	// besides their tokens.
	OIDC *OIDC
}

func (s *Server) tokens() *Tokens {
	if s.TokenSource != nil {
		return s.TokenSource()
	}
	return s.Tokens
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Register adds the public page, the staff pages and API v1 to mux. Every
// staff route answers 401 (API) or sends to the sign-in form (pages)
// without a valid token or session.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/about", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /about", s.pageAbout)

	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("openapi.json")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.method+" "+rt.path, s.bearer(rt.h))
	}

	mux.HandleFunc("GET /staff/login", s.pageLogin)
	mux.HandleFunc("POST /staff/login", s.login)
	if s.OIDC != nil {
		mux.HandleFunc("GET /staff/oidc/login", s.oidcLogin)
		mux.HandleFunc("GET /staff/oidc/callback", s.oidcCallback)
	}
	mux.Handle("POST /staff/logout", s.session(s.logout))
	mux.Handle("GET /staff/", s.session(s.pageList))
	mux.Handle("GET /staff/incidents/{ticket}", s.session(s.pageIncident))
	mux.Handle("GET /staff/reports/{id}/raw", s.session(s.rawReport))
	mux.Handle("POST /staff/incidents/{ticket}/notes", s.session(s.formNote))
	mux.Handle("POST /staff/incidents/{ticket}/change", s.session(s.formChange))
	mux.Handle("POST /staff/incidents/{ticket}/merge", s.session(s.formMerge))
	mux.Handle("POST /staff/incidents/{ticket}/replies", s.session(s.formReply))
	mux.Handle("POST /staff/incidents/{ticket}/notices/{id}/send", s.session(s.formSendNotice))
}

type ctxKey struct{}

// actor is the staff name of the request's token or session.
func actor(r *http.Request) string { n, _ := r.Context().Value(ctxKey{}).(string); return n }

// bearer lets API requests with a valid "Authorization: Bearer TOKEN" in.
func (s *Server) bearer(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := ""
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			token = strings.TrimSpace(strings.TrimPrefix(a, "Bearer "))
		}
		name := s.tokens().Check(token)
		if name == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="madoguchi"`)
			httpError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, name)))
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// badRequest is an error of the request itself (400).
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, a ...any) error { return &badRequest{fmt.Sprintf(format, a...)} }

// status is the HTTP status of an action's error, and what to say.
func (s *Server) status(err error) (int, string) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		return http.StatusBadRequest, br.msg
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, store.ErrConflict):
		msg := strings.TrimPrefix(err.Error(), store.ErrConflict.Error()+": ")
		if msg == store.ErrConflict.Error() {
			msg = "the incident changed meanwhile: reload it and try again"
		}
		return http.StatusConflict, msg
	}
	if s.Log != nil {
		s.Log.Error("staff", "err", err)
	}
	return http.StatusServiceUnavailable, "store unavailable"
}

var slugRE = regexp.MustCompile(`^(.+)-(\d{4}-\d{6})$`)

// ticketParam reads {ticket}: "CSIRT#2026-000123" (with # as %23) or the
// URL-friendly "CSIRT-2026-000123".
func ticketParam(r *http.Request) string { return ticketOf(r.PathValue("ticket")) }

func ticketOf(t string) string {
	t = strings.TrimSpace(t)
	if !strings.Contains(t, "#") {
		if m := slugRE.FindStringSubmatch(t); m != nil {
			t = m[1] + "#" + m[2]
		}
	}
	return t
}

// slug is a ticket as a path segment.
func slug(ticket string) string { return strings.Replace(ticket, "#", "-", 1) }

// maxLimit bounds a page of incidents.
const maxLimit = 500

// filterOf reads the search parameters: ticket, indicator, taxonomy, type,
// status, tlp, assignee, priority, constituent, q (text), dmarc, since and until
// (RFC 3339 or YYYY-MM-DD), limit (at most maxLimit), offset.
func filterOf(q interface{ Get(string) string }) (store.Filter, error) {
	f := store.Filter{Ticket: q.Get("ticket"), Indicator: q.Get("indicator"), Taxonomy: q.Get("taxonomy"),
		Type: q.Get("type"), Status: q.Get("status"), Constituent: q.Get("constituent"), TLP: q.Get("tlp"),
		Assignee: q.Get("assignee"), Priority: q.Get("priority"), Text: q.Get("q"), DMARC: q.Get("dmarc"), Limit: 50}
	for _, v := range []string{f.Ticket, f.Indicator, f.Taxonomy, f.Type, f.Status, f.Constituent, f.TLP, f.Assignee, f.Priority, f.Text, f.DMARC} {
		if len(v) > 200 {
			return f, bad("a search parameter is longer than 200 characters")
		}
	}
	if f.Status != "" {
		if _, ok := vocab.ParseStatus(f.Status); !ok {
			return f, bad("status: one of new, open, stalled, resolved, rejected")
		}
	}
	for _, p := range []struct {
		key string
		t   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(p.key)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse("2006-01-02", v); err != nil {
				return f, bad("%s: want RFC 3339 or YYYY-MM-DD", p.key)
			}
		}
		*p.t = t
	}
	for _, p := range []struct {
		key string
		n   *int
	}{{"limit", &f.Limit}, {"offset", &f.Offset}} {
		if v := q.Get(p.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, bad("%s: want a non-negative number", p.key)
			}
			*p.n = n
		}
	}
	f.Limit = min(max(f.Limit, 1), maxLimit)
	f.Offset = min(f.Offset, 1000000)
	return f, nil
}

// LoopbackOrToken serves h to clients on the loopback interface (Prometheus
// scraping its own host, the default listener) and otherwise only with a
// staff token: nothing beyond the public documents is served to strangers.
func LoopbackOrToken(t func() *Tokens, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, perr := netip.ParseAddr(host); err == nil && perr == nil && ip.Unmap().IsLoopback() {
			h.ServeHTTP(w, r)
			return
		}
		token := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if t().Check(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="madoguchi"`)
			httpError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}
