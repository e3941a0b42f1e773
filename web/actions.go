package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// What staff type is bounded: a note or reply of 20,000 characters is a
// long letter; an assignee is a name.
const (
	maxText     = 20000
	maxAssignee = 200
)

// The actions below are what the pages' forms and API v1 both do.

func checkText(field, text string) (string, error) {
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	switch {
	case text == "":
		return "", bad("%s: empty", field)
	case !utf8.ValidString(text):
		return "", bad("%s: not UTF-8", field)
	case utf8.RuneCountInString(text) > maxText:
		return "", bad("%s: more than %d characters", field, maxText)
	}
	return text, nil
}

func (s *Server) addNote(ctx context.Context, ticket, who, text string) error {
	text, err := checkText("text", text)
	if err != nil {
		return err
	}
	return s.Store.AddNote(ctx, ticket, who, text)
}

// changeRequest is a PATCH body or the change form: absent fields change
// nothing. UpdatedAt (RFC 3339, as GET returned it) refuses a change on a
// stale view with 409.
type changeRequest struct {
	Status     *string `json:"status"`
	Assignee   *string `json:"assignee"`
	Priority   *string `json:"priority"`
	Resolution *string `json:"resolution"`
	UpdatedAt  string  `json:"updated_at"`
}

func (s *Server) change(ctx context.Context, ticket, who string, req changeRequest) error {
	c := store.Change{Actor: who, Domain: s.Domain}
	if req.Status == nil && req.Assignee == nil && req.Priority == nil && req.Resolution == nil {
		return bad("give status, assignee, priority and/or resolution")
	}
	if req.Status != nil {
		st, ok := vocab.ParseStatus(*req.Status)
		if !ok {
			return bad("status: one of new, open, stalled, resolved, rejected")
		}
		c.Status = st
	}
	if req.Assignee != nil {
		a := strings.TrimSpace(*req.Assignee)
		if len(a) > maxAssignee || strings.ContainsAny(a, "\r\n") || !utf8.ValidString(a) {
			return bad("assignee: one line of at most %d characters", maxAssignee)
		}
		c.Assignee = &a
	}
	if req.Priority != nil && *req.Priority != "" {
		p, ok := vocab.ParsePriority(*req.Priority)
		if !ok {
			return bad("priority: one of P1, P2, P3, P4")
		}
		c.Priority = p
	}
	if req.Resolution != nil && strings.TrimSpace(*req.Resolution) != "" {
		text, err := checkText("resolution", *req.Resolution)
		if err != nil {
			return err
		}
		c.Resolution = &text
	}
	if req.UpdatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, req.UpdatedAt)
		if err != nil {
			return bad("updated_at: RFC 3339, as the incident gave it")
		}
		c.IfUpdated = t
	}
	return s.Store.UpdateIncident(ctx, ticket, c)
}

func (s *Server) merge(ctx context.Context, ticket, who, into string) error {
	into = ticketOf(into)
	if _, ok := vocab.ParseTicket(into); !ok {
		return bad("into: a ticket, e.g. CSIRT#2026-000123")
	}
	return s.Store.Merge(ctx, ticket, into, who)
}

// reply queues staff's answer to the requester. What came encrypted is
// never answered in clear: without the requester's key the reply is
// refused (409) before it is queued.
func (s *Server) reply(ctx context.Context, ticket, who, text string) (int64, error) {
	text, err := checkText("text", text)
	if err != nil {
		return 0, err
	}
	d, err := s.Store.GetIncident(ctx, ticket)
	if err != nil {
		return 0, err
	}
	rcpt := d.Requester
	for _, o := range d.Outbox {
		if o.Kind == store.OutboxAck {
			rcpt = o.Recipient
			break
		}
	}
	for _, r := range d.ReportList {
		var rep struct {
			Decryption struct {
				Status vocab.DecStatus `json:"status"`
			} `json:"decryption"`
		}
		if json.Unmarshal(r.Report, &rep) == nil && rep.Decryption.Status == vocab.DecOK && (s.KeyKnown == nil || !s.KeyKnown(rcpt, d.Requester)) {
			return 0, fmt.Errorf("%w: a report of this incident came encrypted and the key of %s is not known: import it (madoguchi keys import) to answer", store.ErrConflict, rcpt)
		}
	}
	return s.Store.QueueReply(ctx, d.Ticket, who, text, s.Domain)
}

func (s *Server) sendNotice(ctx context.Context, ticket, who, id string) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return bad("notice id: a number")
	}
	err = s.Store.ReleaseNotice(ctx, ticket, n, who)
	if err == store.ErrConflict {
		return fmt.Errorf("%w: the notice is not held (sent or released already)", store.ErrConflict)
	}
	return err
}

// rawReport sends a report's raw message as a download: text/plain, an
// attachment, never rendered (nosniff, a sandboxing CSP).
func (s *Server) rawReport(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "report id: a number")
		return
	}
	spoolID, err := s.Store.ReportSpool(r.Context(), id)
	if err == nil {
		var m *store.Message
		if m, err = s.Store.GetMessage(r.Context(), spoolID); err == nil {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Disposition", "attachment; filename=\"report-"+strconv.FormatInt(id, 10)+".eml\"")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(m.Raw)
			return
		}
	}
	code, msg := s.status(err)
	httpError(w, code, msg)
}
