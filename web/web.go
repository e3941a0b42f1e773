package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
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

//go:embed templates/*.html
var pageFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"pretty": func(raw json.RawMessage) string {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return string(raw)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
}).ParseFS(pageFS, "templates/*.html"))

// Server is the staff API and pages.
type Server struct {
	Store  store.Store
	Tokens *Tokens
	Team   string
	Log    *slog.Logger
}

// Register adds the staff routes to mux. Every one of them answers 401
// without a valid token.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /api/incidents", s.auth(s.listIncidents))
	mux.Handle("GET /api/incidents/{ticket}", s.auth(s.getIncident))
	mux.Handle("POST /api/incidents/{ticket}", s.auth(s.changeIncident))
	mux.Handle("GET /api/reports/{id}/raw", s.auth(s.rawReport))
	// Notices to constituents: the first route of API v1 (the staff
	// workflow issue moves the others under /api/v1).
	mux.Handle("POST /api/v1/incidents/{ticket}/notices/{id}/send", s.auth(s.sendNotice))
	mux.Handle("GET /staff/", s.auth(s.pageList))
	mux.Handle("GET /staff/incidents/{ticket}", s.auth(s.pageIncident))
}

type ctxKey struct{}

// auth accepts "Authorization: Bearer TOKEN" (the API) or the
// madoguchi_token cookie (the pages, set by the caller's own means).
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := ""
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			token = strings.TrimSpace(strings.TrimPrefix(a, "Bearer "))
		} else if c, err := r.Cookie("madoguchi_token"); err == nil {
			token = c.Value
		}
		name := s.Tokens.Check(token)
		if name == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="madoguchi"`)
			httpError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, name)))
	})
}

func actor(r *http.Request) string { n, _ := r.Context().Value(ctxKey{}).(string); return n }

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

var slugRE = regexp.MustCompile(`^(.+)-(\d{4}-\d{6})$`)

// ticketParam reads {ticket}: "CSIRT#2026-000123" (with # as %23) or the
// URL-friendly "CSIRT-2026-000123".
func ticketParam(r *http.Request) string {
	t := r.PathValue("ticket")
	if !strings.Contains(t, "#") {
		if m := slugRE.FindStringSubmatch(t); m != nil {
			t = m[1] + "#" + m[2]
		}
	}
	return t
}

// filterOf reads the search parameters: ticket, indicator, taxonomy, type,
// status, constituent, since and until (RFC 3339 or YYYY-MM-DD), limit (at most 500),
// offset.
func filterOf(r *http.Request) (store.Filter, error) {
	q := r.URL.Query()
	f := store.Filter{Ticket: q.Get("ticket"), Indicator: q.Get("indicator"), Taxonomy: q.Get("taxonomy"),
		Type: q.Get("type"), Status: q.Get("status"), Constituent: q.Get("constituent"), Limit: 50}
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
				return f, errors.New(p.key + ": want RFC 3339 or YYYY-MM-DD")
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
				return f, errors.New(p.key + ": want a non-negative number")
			}
			*p.n = n
		}
	}
	f.Limit = min(max(f.Limit, 1), 500)
	return f, nil
}

// search runs the request's search; on a bad parameter or a store fault
// it has answered already and ok is false.
func (s *Server) search(w http.ResponseWriter, r *http.Request) (list []store.Incident, f store.Filter, ok bool) {
	f, err := filterOf(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return nil, f, false
	}
	list, err = s.Store.ListIncidents(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return nil, f, false
	}
	return list, f, true
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) {
	if list, f, ok := s.search(w, r); ok {
		writeJSON(w, map[string]any{"incidents": list, "limit": f.Limit, "offset": f.Offset})
	}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if s.Log != nil {
		s.Log.Error("staff api", "err", err)
	}
	httpError(w, http.StatusServiceUnavailable, "store unavailable")
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.GetIncident(r.Context(), ticketParam(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, d)
}

func (s *Server) changeIncident(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status   string `json:"status"`
		Assignee string `json:"assignee"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if req.Status == "" && req.Assignee == "" {
		httpError(w, http.StatusBadRequest, "give status and/or assignee")
		return
	}
	status, ok := vocab.ParseStatus(req.Status)
	if req.Status != "" && !ok {
		httpError(w, http.StatusBadRequest, "status: one of new, open, stalled, resolved, rejected")
		return
	}
	if len(req.Assignee) > 200 || strings.ContainsAny(req.Assignee, "\r\n") {
		httpError(w, http.StatusBadRequest, "assignee: one line of at most 200 characters")
		return
	}
	ticket := ticketParam(r)
	if err := s.Store.SetStatus(r.Context(), ticket, status, req.Assignee, actor(r)); err != nil {
		s.fail(w, err)
		return
	}
	s.getIncident(w, r)
}

// sendNotice releases a held notice to a constituent (202: it is queued);
// 404 when the ticket has no such notice, 409 when it is not held.
func (s *Server) sendNotice(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "notice id: a number")
		return
	}
	err = s.Store.ReleaseNotice(r.Context(), ticketParam(r), id, actor(r))
	if errors.Is(err, store.ErrConflict) {
		httpError(w, http.StatusConflict, "the notice is not held (sent or released already)")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"outbox_id": id, "state": store.OutboxPending})
}

func (s *Server) rawReport(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "report id: a number")
		return
	}
	spoolID, err := s.Store.ReportSpool(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	m, err := s.Store.GetMessage(r.Context(), spoolID)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", "attachment; filename=\"report-"+strconv.FormatInt(id, 10)+".eml\"")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(m.Raw)
}

func (s *Server) page(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The pages show what strangers wrote: no script runs, nothing loads.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := pages.ExecuteTemplate(w, name, data); err != nil && s.Log != nil {
		s.Log.Error("staff page", "err", err)
	}
}

func (s *Server) pageList(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/staff/" {
		http.NotFound(w, r)
		return
	}
	if list, f, ok := s.search(w, r); ok {
		s.page(w, "list.html", map[string]any{"Team": s.Team, "Incidents": list, "Filter": f, "Actor": actor(r)})
	}
}

func (s *Server) pageIncident(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.GetIncident(r.Context(), ticketParam(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	s.page(w, "incident.html", map[string]any{"Team": s.Team, "I": d, "Slug": strings.Replace(d.Ticket, "#", "-", 1)})
}

// LoopbackOrToken serves h to clients on the loopback interface (Prometheus
// scraping its own host, the default listener) and otherwise only with a
// staff token: nothing beyond the public documents is served to strangers.
func LoopbackOrToken(t *Tokens, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, perr := netip.ParseAddr(host); err == nil && perr == nil && ip.Unmap().IsLoopback() {
			h.ServeHTTP(w, r)
			return
		}
		token := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if t.Check(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="madoguchi"`)
			httpError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}
