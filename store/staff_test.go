package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// TestStaffWorkflow: staff changes are events with their actor and refuse
// a stale view; a reply and the resolution notice go where the
// acknowledgement went, threaded; a later report reopens a resolved
// incident; a merged incident's reports, events and ticket go to the
// incident it was merged into.
func TestStaffWorkflow(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a := filing(spool(t, s, "a"), "<a@x.example>", "reporter@x.example")
		a.Ack.Recipient = "bounces+reporter@x.example" // the envelope sender
		ra, err := s.File(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		det, _ := s.GetIncident(ctx, ra.Ticket)
		seen := det.UpdatedAt
		c.Add(time.Second)
		alice := "alice"
		if err := s.UpdateIncident(ctx, ra.Ticket, store.Change{Status: vocab.StatusOpen, Assignee: &alice, Priority: "P2", Actor: "bob", IfUpdated: seen}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateIncident(ctx, ra.Ticket, store.Change{Priority: "P1", Actor: "carol", IfUpdated: seen}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a change on a stale view: %v", err)
		}
		if err := s.AddNote(ctx, ra.Ticket, "bob", "called the host owner"); err != nil {
			t.Fatal(err)
		}
		id, err := s.QueueReply(ctx, ra.Ticket, "bob", "Could you send the headers?", "csirt.example.org")
		if err != nil || id == 0 {
			t.Fatalf("reply: %d %v", id, err)
		}
		res := "The site was taken down."
		if err := s.UpdateIncident(ctx, ra.Ticket, store.Change{Status: vocab.StatusResolved, Resolution: &res, Actor: "bob", Domain: "csirt.example.org"}); err != nil {
			t.Fatal(err)
		}
		det, _ = s.GetIncident(ctx, ra.Ticket)
		if det.Status != vocab.StatusResolved || det.Assignee != "alice" || det.Priority != "P2" || det.Resolution != res {
			t.Fatalf("incident: %+v", det.Incident)
		}
		var evs []string
		for _, e := range det.Events {
			evs = append(evs, e.Kind+"/"+e.Actor)
		}
		if got := strings.Join(evs, " "); got != "created/ assignee/bob priority/bob status/bob note/bob reply/bob resolution/bob status/bob resolution-notice/bob" {
			t.Fatalf("events: %s", got)
		}
		var reply, notice store.OutboxEntry
		for _, o := range det.Outbox {
			switch o.Kind {
			case store.OutboxReply:
				reply = o
			case store.OutboxResolved:
				notice = o
			}
		}
		if reply.Recipient != "bounces+reporter@x.example" || !strings.Contains(reply.Payload, "Could you send the headers?") || reply.ReportID != ra.ReportID ||
			notice.Recipient != "bounces+reporter@x.example" || !strings.Contains(notice.Payload, res) {
			t.Fatalf("reply %+v, notice %+v", reply, notice)
		}
		// The reporter answers the reply: threaded, and the incident opens again.
		c.Add(time.Second)
		answer := filing(spool(t, s, "answer"), "<ans@x.example>", "reporter@x.example")
		answer.References = []string{reply.MessageID}
		if r, err := s.File(ctx, answer); err != nil || r.Outcome != store.OutcomeAttached || r.Ticket != ra.Ticket {
			t.Fatalf("answer: %+v %v", r, err)
		}
		det, _ = s.GetIncident(ctx, ra.Ticket)
		if det.Status != vocab.StatusOpen || det.Events[len(det.Events)-1].Kind != "reopened" {
			t.Fatalf("after a report on a resolved incident: %s %+v", det.Status, det.Events[len(det.Events)-1])
		}

		// Merge b into a.
		b := filing(spool(t, s, "b"), "<b@y.example>", "other@y.example")
		rb, err := s.File(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Merge(ctx, ra.Ticket, ra.Ticket, "bob"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("merge into itself: %v", err)
		}
		if err := s.Merge(ctx, rb.Ticket, ra.Ticket, "bob"); err != nil {
			t.Fatal(err)
		}
		if err := s.Merge(ctx, rb.Ticket, ra.Ticket, "bob"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("merge twice: %v", err)
		}
		det, err = s.GetIncident(ctx, rb.Ticket)
		if err != nil || det.Ticket != ra.Ticket || len(det.Aliases) != 1 || det.Aliases[0] != rb.Ticket || len(det.ReportList) != 3 {
			t.Fatalf("the merged ticket: %+v %v", det, err)
		}
		list, _ := s.ListIncidents(ctx, store.Filter{})
		if len(list) != 1 || list[0].Ticket != ra.Ticket {
			t.Fatalf("list after merge: %+v", list)
		}
		later := filing(spool(t, s, "later"), "<later@y.example>", "other@y.example")
		later.Ticket = rb.Ticket
		if r, err := s.File(ctx, later); err != nil || r.Outcome != store.OutcomeAttached || r.Ticket != ra.Ticket {
			t.Fatalf("the old ticket's tag: %+v %v", r, err)
		}
		// Reply and notes under the old ticket reach the new incident.
		if err := s.AddNote(ctx, rb.Ticket, "bob", "via alias"); err != nil {
			t.Fatal(err)
		}

		// Sessions.
		sess := store.Session{ID: "abc", Actor: "alice", TokenLine: "sha256:00", CSRF: "tok", CreatedAt: c.Now(), ExpiresAt: c.Now().Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSession(ctx, "abc"); err != nil || got.Actor != "alice" || got.CSRF != "tok" || got.TokenLine != "sha256:00" {
			t.Fatalf("session: %+v %v", got, err)
		}
		c.Add(2 * time.Hour)
		if _, err := s.GetSession(ctx, "abc"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired session: %v", err)
		}
		sess.ID, sess.ExpiresAt = "def", c.Now().Add(time.Hour)
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, "def"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, "def"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted session: %v", err)
		}
	})
}

// TestCertificatesKept: a correspondent's certificate is kept per
// address; a different one replaces it only when valid as long or longer.
func TestCertificatesKept(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		if _, err := s.Certificate(ctx, "a@x.example"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("none yet: %v", err)
		}
		year := c.Now().Add(365 * 24 * time.Hour)
		for i, step := range []struct {
			der     string
			sha     string
			until   time.Time
			changed bool
			kept    string
		}{
			{"one", "s1", year, true, "one"},
			{"one", "s1", year, false, "one"},                   // the same again
			{"short", "s2", year.Add(-time.Hour), false, "one"}, // valid less long
			{"long", "s3", year.Add(time.Hour), true, "long"},
		} {
			changed, err := s.SaveCertificate(ctx, "A@x.example", []byte(step.der), step.sha, step.until)
			if err != nil || changed != step.changed {
				t.Fatalf("step %d: changed %v, %v", i, changed, err)
			}
			if der, err := s.Certificate(ctx, "a@X.example"); err != nil || string(der) != step.kept {
				t.Fatalf("step %d: kept %q, %v", i, der, err)
			}
		}
	})
}
