package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// TestConstituentMatchesAndNotices: matches are recorded with the report
// and shown on the incident (searchable); the noticer's operations take
// each match once, into one notice, even when asked twice; a held notice
// is never claimed until released, and only about its own tickets; a
// reprocessed report replaces its matches without repeating those a
// notice already took.
func TestConstituentMatchesAndNotices(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		a := filing(spool(t, s, "a"), "<a@x.example>", "reporter@x.example")
		a.TLP = "amber"
		a.Matches = []store.Match{{"acme", "ipv4", "192.0.2.7"}, {"beta", "domain", "beta.example"}, {"acme", "domain", "www.acme.example"}}
		ra, err := s.File(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		b := filing(spool(t, s, "b"), "<b@x.example>", "other@x.example")
		b.TLP = "red"
		b.Matches = []store.Match{{"acme", "ipv4", "192.0.2.8"}}
		rb, err := s.File(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		inc, err := s.GetIncident(ctx, ra.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(inc.Constituents)
		if string(js) != `[{"id":"acme","indicators":[{"kind":"ipv4","value":"192.0.2.7"},{"kind":"domain","value":"www.acme.example"}]},{"id":"beta","indicators":[{"kind":"domain","value":"beta.example"}]}]` {
			t.Fatalf("constituents: %s", js)
		}
		if !hasEvent(inc.Events, "constituents", "concerns acme (2 indicators), beta (1 indicator)") {
			t.Fatalf("no constituents event: %+v", inc.Events)
		}
		list, err := s.ListIncidents(ctx, store.Filter{Constituent: "beta"})
		if err != nil || len(list) != 1 || list[0].Ticket != ra.Ticket {
			t.Fatalf("filter by constituent: %+v %v", list, err)
		}
		if list, _ := s.ListIncidents(ctx, store.Filter{Constituent: "acme"}); len(list) != 2 {
			t.Fatalf("acme's incidents: %d", len(list))
		}

		pend, err := s.PendingConstituents(ctx)
		if err != nil || len(pend) != 2 || pend[0].Constituent != "acme" || pend[0].Count != 3 || pend[1].Count != 1 || !pend[0].Oldest.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("pending: %+v %v", pend, err)
		}
		ms, err := s.PendingMatches(ctx, "acme", 10)
		if err != nil || len(ms) != 3 || ms[0].Value != "192.0.2.7" || ms[0].Ticket != ra.Ticket || ms[0].TLP != "amber" || ms[0].Requester != "reporter@x.example" || ms[2].TLP != "red" || ms[2].Ticket != rb.Ticket {
			t.Fatalf("acme's matches: %+v %v", ms, err)
		}
		payload, _ := json.Marshal(store.NoticePayload{Constituent: "acme", Tickets: []string{ra.Ticket, rb.Ticket}, Incidents: []int64{ra.IncidentID, rb.IncidentID}})
		notice := store.Notice{MatchIDs: []int64{ms[0].ID, ms[1].ID, ms[2].ID}, Domain: "csirt.example.org", Note: "3 indicators",
			Rows: []store.NoticeRow{{Recipient: "security@acme.example", Held: true, Payload: string(payload)}, {Recipient: "noc@acme.example", Payload: string(payload)}}}
		ids, err := s.QueueNotice(ctx, notice)
		if err != nil || len(ids) != 2 {
			t.Fatalf("queue: %v %v", ids, err)
		}
		if _, err := s.QueueNotice(ctx, notice); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("the same matches twice: %v", err)
		}
		if pend, _ := s.PendingConstituents(ctx); len(pend) != 1 || pend[0].Constituent != "beta" {
			t.Fatalf("pending after the notice: %+v", pend)
		}
		for _, tk := range []string{ra.Ticket, rb.Ticket} {
			inc, _ := s.GetIncident(ctx, tk)
			if !hasEvent(inc.Events, "notice", "to security@acme.example: 3 indicators") || !hasEvent(inc.Events, "notice", "to noc@acme.example: 3 indicators") {
				t.Fatalf("%s: notice events %+v", tk, inc.Events)
			}
		}
		// Only the pending row is claimed; the held one waits for staff.
		claimed, err := s.ClaimOutbox(ctx, 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range claimed {
			kinds = append(kinds, e.Kind+":"+e.Recipient)
			if e.Kind == store.OutboxNotice && e.Payload != string(payload) {
				t.Fatalf("payload %q", e.Payload)
			}
			if e.Kind == store.OutboxNotice && !strings.HasPrefix(e.MessageID, "<csirt-2026-") {
				t.Fatalf("message id %q", e.MessageID)
			}
		}
		if strings.Join(kinds, " ") != "ack:reporter@x.example ack:other@x.example notice:noc@acme.example" {
			t.Fatalf("claimed %q", kinds)
		}
		if err := s.ReleaseNotice(ctx, "CSIRT#2026-000099", ids[0], "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release under another ticket: %v", err)
		}
		if err := s.ReleaseNotice(ctx, rb.Ticket, ids[1], "alice"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release of a pending notice: %v", err)
		}
		if err := s.ReleaseNotice(ctx, rb.Ticket, ids[0], "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseNotice(ctx, rb.Ticket, ids[0], "alice"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("released twice: %v", err)
		}
		claimed, _ = s.ClaimOutbox(ctx, 100, time.Minute)
		if len(claimed) != 1 || claimed[0].ID != ids[0] {
			t.Fatalf("after release: %+v", claimed)
		}
		inc, _ = s.GetIncident(ctx, ra.Ticket)
		if !hasEvent(inc.Events, "notice", "released by alice") {
			t.Fatalf("no release event: %+v", inc.Events)
		}
		// A reply to the notice threads to the first incident.
		reply := filing(spool(t, s, "reply"), "<r@acme.example>", "security@acme.example")
		reply.References = []string{claimed[0].MessageID}
		if r, err := s.File(ctx, reply); err != nil || r.Outcome != store.OutcomeAttached || r.Ticket != ra.Ticket {
			t.Fatalf("reply to a notice: %+v %v", r, err)
		}

		// A constituent the incident concerns may add to it by the ticket
		// tag alone, as the requester may; another may not.
		tagged := filing(spool(t, s, "tagged"), "<t@acme.example>", "noc@acme.example")
		tagged.Ticket, tagged.SenderConstituent = rb.Ticket, "acme"
		if r, err := s.File(ctx, tagged); err != nil || r.Outcome != store.OutcomeAttached || r.Ticket != rb.Ticket {
			t.Fatalf("the constituent's tagged reply: %+v %v", r, err)
		}
		other := filing(spool(t, s, "other"), "<o@zeta.example>", "soc@zeta.example")
		other.Ticket, other.SenderConstituent = rb.Ticket, "zeta"
		if r, err := s.File(ctx, other); err != nil || r.Outcome != store.OutcomeNew {
			t.Fatalf("another constituent's tagged mail: %+v %v", r, err)
		}

		// Reprocessing report a: acme's matches were taken and stay once;
		// beta's pending one is replaced by what the report says now.
		again := *a
		again.Matches = []store.Match{{"acme", "ipv4", "192.0.2.7"}, {"gamma", "ipv4", "203.0.113.1"}}
		if r, err := s.File(ctx, &again); err != nil || r.Outcome != store.OutcomeReprocessed {
			t.Fatalf("reprocess: %+v %v", r, err)
		}
		pend, _ = s.PendingConstituents(ctx)
		if len(pend) != 1 || pend[0].Constituent != "gamma" || pend[0].Count != 1 {
			t.Fatalf("pending after reprocess: %+v", pend)
		}
		inc, _ = s.GetIncident(ctx, ra.Ticket)
		js, _ = json.Marshal(inc.Constituents)
		if string(js) != `[{"id":"acme","indicators":[{"kind":"ipv4","value":"192.0.2.7"},{"kind":"domain","value":"www.acme.example"}]},{"id":"gamma","indicators":[{"kind":"ipv4","value":"203.0.113.1"}]}]` {
			t.Fatalf("constituents after reprocess: %s", js)
		}
		// No rows: the matches are only marked, with the note as event.
		gm, _ := s.PendingMatches(ctx, "gamma", 10)
		if _, err := s.QueueNotice(ctx, store.Notice{MatchIDs: []int64{gm[0].ID}, Note: "gamma is notify: never"}); err != nil {
			t.Fatal(err)
		}
		inc, _ = s.GetIncident(ctx, ra.Ticket)
		if !hasEvent(inc.Events, "notice", "gamma is notify: never") {
			t.Fatalf("no never event: %+v", inc.Events)
		}
		if pend, _ := s.PendingConstituents(ctx); len(pend) != 0 {
			t.Fatalf("still pending: %+v", pend)
		}
	})
}

func hasEvent(evs []store.Event, kind, text string) bool {
	for _, e := range evs {
		if e.Kind == kind && strings.Contains(e.Detail, text) {
			return true
		}
	}
	return false
}
