package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// Noticer puts the constituent matches that filing recorded into
// notices: for each constituent, once its oldest waiting match is Window
// old, every match waiting then goes into one notice (an outbox row per
// contact), so that a feed naming hundreds of a constituent's addresses
// gives it one mail per window, not one per line.
//
// What it decides per constituent: notify "never" records the matches on
// the incident and sends nothing; "staff" holds the notice for staff to
// send; TLP:RED reports are held whatever the constituent says, in a
// notice of their own, so that the others still go. A notice of an
// encrypted report is held as well when a contact has no key: what came
// encrypted never leaves in clear unless staff decide it.
type Noticer struct {
	Store        store.Store
	Constituents func() *constituency.Set
	// Window is constituency.aggregate_window (0: a notice per pass).
	Window time.Duration
	// Domain is the right-hand side of the notices' Message-IDs.
	Domain string
	// HasKey tells whether a contact's notices can be encrypted (a key
	// file or a key in the keyring).
	HasKey func(address string) bool
	// MaxItems bounds one notice (0: 5000); the rest go in the next.
	MaxItems int
	// Interval between passes (0: 2 s).
	Interval time.Duration
	Metrics  *Metrics
	Log      *slog.Logger
	Now      func() time.Time

	metricsOnce sync.Once
}

func (n *Noticer) metrics() *Metrics {
	n.metricsOnce.Do(func() {
		if n.Metrics == nil {
			n.Metrics = NewMetrics(nil)
		}
	})
	return n.Metrics
}

// Run makes notices until ctx ends.
func (n *Noticer) Run(ctx context.Context) {
	every := n.Interval
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := n.Once(ctx); err != nil && ctx.Err() == nil {
			n.Log.Error("notices", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once makes the notices that are due and returns how many outbox rows
// it queued.
func (n *Noticer) Once(ctx context.Context) (int, error) {
	now := time.Now()
	if n.Now != nil {
		now = n.Now()
	}
	pend, err := n.Store.PendingConstituents(ctx)
	if err != nil {
		return 0, err
	}
	set := n.Constituents()
	queued := 0
	for _, p := range pend {
		if now.Sub(p.Oldest) < n.Window {
			continue
		}
		limit := n.MaxItems
		if limit <= 0 {
			limit = 5000
		}
		ms, err := n.Store.PendingMatches(ctx, p.Constituent, limit)
		if err != nil {
			return queued, err
		}
		k, err := n.notice(ctx, set, p.Constituent, ms)
		queued += k
		if errors.Is(err, store.ErrConflict) {
			continue // another daemon took them
		}
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// notice queues the notices of one constituent's waiting matches.
func (n *Noticer) notice(ctx context.Context, set *constituency.Set, id string, ms []store.PendingMatch) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	ids := func(ms []store.PendingMatch) []int64 {
		out := make([]int64, len(ms))
		for i, m := range ms {
			out[i] = m.ID
		}
		return out
	}
	c, ok := set.Get(id)
	if !ok {
		_, err := n.Store.QueueNotice(ctx, store.Notice{MatchIDs: ids(ms),
			Note: fmt.Sprintf("%s is no longer in the constituents file: no notice for %d %s", id, len(ms), plural(len(ms), "indicator"))})
		return 0, err
	}
	if c.Notify == constituency.NotifyNever {
		_, err := n.Store.QueueNotice(ctx, store.Notice{MatchIDs: ids(ms),
			Note: fmt.Sprintf("%s is notify: never: %d %s recorded, no notice", id, len(ms), plural(len(ms), "indicator"))})
		return 0, err
	}
	// TLP:RED apart: held, and not holding back the rest.
	var red, rest []store.PendingMatch
	for _, m := range ms {
		if vocab.TLP(m.TLP) == vocab.TLPRed {
			red = append(red, m)
		} else {
			rest = append(rest, m)
		}
	}
	queued := 0
	for _, group := range [][]store.PendingMatch{rest, red} {
		if len(group) == 0 {
			continue
		}
		held := ""
		switch {
		case vocab.TLP(group[0].TLP) == vocab.TLPRed:
			held = "TLP:RED: staff decide"
		case c.Notify == constituency.NotifyStaff:
			held = c.ID + " is notify: staff"
		}
		if held == "" && n.HasKey != nil && n.cameEncrypted(ctx, group) && slices.ContainsFunc(c.Contacts, func(ct constituency.Contact) bool { return !n.HasKey(ct.Address) }) {
			held = "a report came encrypted and a contact has no key"
		}
		p := payload(c, group)
		p.Held = held
		notice := store.Notice{MatchIDs: ids(group), Domain: n.Domain}
		for _, ct := range c.Contacts {
			p.Language = ct.Language
			js, _ := json.Marshal(p)
			notice.Rows = append(notice.Rows, store.NoticeRow{Recipient: ct.Address, Held: held != "", Payload: string(js)})
		}
		notice.Note = fmt.Sprintf("%s, %d %s, TLP:%s", c.ID, len(p.Items), plural(len(p.Items), "indicator"), upper(p.TLP))
		state := "queued"
		if held != "" {
			notice.Note += "; held for staff (" + held + ")"
			state = "held"
		}
		if _, err := n.Store.QueueNotice(ctx, notice); err != nil {
			return queued, err
		}
		queued += len(notice.Rows)
		n.metrics().Notices.WithLabelValues(c.ID, state).Add(float64(len(notice.Rows)))
		n.Log.Info("notice", "constituent", c.ID, "indicators", len(p.Items), "contacts", len(notice.Rows), "held", held)
	}
	return queued, nil
}

// cameEncrypted tells whether any report of the matches came encrypted.
func (n *Noticer) cameEncrypted(ctx context.Context, ms []store.PendingMatch) bool {
	seen := map[int64]bool{}
	for _, m := range ms {
		if seen[m.ReportID] {
			continue
		}
		seen[m.ReportID] = true
		js, _, err := n.Store.ReportTicket(ctx, m.ReportID)
		if err != nil {
			return true // unknown: the careful answer
		}
		var r struct {
			Decryption parse.Decryption `json:"decryption"`
		}
		if json.Unmarshal(js, &r) != nil || r.Decryption.Status == vocab.DecOK {
			return true
		}
	}
	return false
}

// payload is what a notice of these matches says. The notice's TLP is the
// strictest of its reports'; a report without a marking counts as
// TLP:AMBER (shared with the constituent, not beyond). The reporter is
// kept only for TLP:CLEAR and TLP:GREEN reports.
func payload(c constituency.Constituent, ms []store.PendingMatch) store.NoticePayload {
	p := store.NoticePayload{Constituent: c.ID, Name: c.Name, TLP: string(vocab.TLPClear)}
	seen := map[string]bool{}
	for _, m := range ms {
		tlp := vocab.TLP(m.TLP)
		if tlp.Rank() == 0 {
			tlp = vocab.TLPAmber
		}
		if tlp.Rank() > vocab.TLP(p.TLP).Rank() {
			p.TLP = string(tlp)
		}
		if !slices.Contains(p.Tickets, m.Ticket) {
			p.Tickets, p.Incidents = append(p.Tickets, m.Ticket), append(p.Incidents, m.IncidentID)
		}
		key := m.Ticket + "\x00" + string(m.Kind) + "\x00" + m.Value
		if seen[key] {
			continue
		}
		seen[key] = true
		it := store.NoticeItem{Ticket: m.Ticket, ReportID: m.ReportID, Taxonomy: m.Taxonomy, Type: m.Type, TLP: m.TLP,
			Kind: m.Kind, Value: m.Value, ReportedAt: m.CreatedAt}
		if tlp == vocab.TLPClear || tlp == vocab.TLPGreen {
			it.Reporter = m.Requester
		}
		p.Items = append(p.Items, it)
	}
	return p
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
