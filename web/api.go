package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// apiRoute is one route of API v1 (openapi.json documents each; a test
// holds the two to each other).
type apiRoute struct {
	method, path string
	h            http.HandlerFunc
}

func (s *Server) apiRoutes() []apiRoute {
	return []apiRoute{
		{"GET", "/api/v1/incidents", s.apiList},
		{"GET", "/api/v1/incidents/{ticket}", s.apiGet},
		{"PATCH", "/api/v1/incidents/{ticket}", s.apiPatch},
		{"POST", "/api/v1/incidents/{ticket}/notes", s.apiNote},
		{"POST", "/api/v1/incidents/{ticket}/replies", s.apiReply},
		{"POST", "/api/v1/incidents/{ticket}/merge", s.apiMerge},
		{"POST", "/api/v1/incidents/{ticket}/notices/{id}/send", s.apiSendNotice},
		{"GET", "/api/v1/reports/{id}/raw", s.rawReport},
	}
}

func (s *Server) apiFail(w http.ResponseWriter, err error) {
	code, msg := s.status(err)
	httpError(w, code, msg)
}

// decode reads a JSON body of at most 64 KiB, unknown fields refused.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad("body: %v", err)
	}
	return nil
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r.URL.Query())
	if err != nil {
		s.apiFail(w, err)
		return
	}
	list, err := s.Store.ListIncidents(r.Context(), f)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": list, "limit": f.Limit, "offset": f.Offset})
}

// etag is an incident's version: its last update, which a PATCH may name
// in If-Match.
func etag(d *store.IncidentDetail) string {
	return `"` + strconv.FormatInt(d.UpdatedAt.UnixMicro(), 10) + `"`
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.GetIncident(r.Context(), ticketParam(r))
	if err != nil {
		s.apiFail(w, err)
		return
	}
	w.Header().Set("ETag", etag(d))
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) apiPatch(w http.ResponseWriter, r *http.Request) {
	var req changeRequest
	if err := decode(r, &req); err != nil {
		s.apiFail(w, err)
		return
	}
	ticket := ticketParam(r)
	if m := strings.Trim(r.Header.Get("If-Match"), `" `); m != "" && req.UpdatedAt == "" {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "If-Match: the ETag of GET")
			return
		}
		req.UpdatedAt = time.UnixMicro(v).UTC().Format(time.RFC3339Nano)
	}
	if err := s.change(r.Context(), ticket, actor(r), req); err != nil {
		s.apiFail(w, err)
		return
	}
	s.apiGet(w, r)
}

func (s *Server) apiNote(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text string `json:"text"`
	}
	if err := decode(r, &req); err != nil {
		s.apiFail(w, err)
		return
	}
	if err := s.addNote(r.Context(), ticketParam(r), actor(r), req.Text); err != nil {
		s.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"status": "noted"})
}

func (s *Server) apiReply(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text string `json:"text"`
	}
	if err := decode(r, &req); err != nil {
		s.apiFail(w, err)
		return
	}
	id, err := s.reply(r.Context(), ticketParam(r), actor(r), req.Text)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"outbox_id": id, "state": store.OutboxPending})
}

func (s *Server) apiMerge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Into string `json:"into"`
	}
	if err := decode(r, &req); err != nil {
		s.apiFail(w, err)
		return
	}
	if err := s.merge(r.Context(), ticketParam(r), actor(r), req.Into); err != nil {
		s.apiFail(w, err)
		return
	}
	d, err := s.Store.GetIncident(r.Context(), ticketOf(req.Into))
	if err != nil {
		s.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) apiSendNotice(w http.ResponseWriter, r *http.Request) {
	if err := s.sendNotice(r.Context(), ticketParam(r), actor(r), r.PathValue("id")); err != nil {
		s.apiFail(w, err)
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	writeJSON(w, http.StatusAccepted, map[string]any{"outbox_id": id, "state": store.OutboxPending})
}
