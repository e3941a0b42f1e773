package sqlstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// Filing, the one algorithm of both drivers, in three steps inside one
// transaction:
//
//  1. Lookup (the driver's SQL) reads what the store knows of every filing
//     of the batch: its spool row's hash, the report it was filed as
//     before, a filed report with its de-duplication key, the incidents
//     its References and ticket tag name; it also reserves IDs for the
//     rows the batch may add and reads (and locks) the year's ticket
//     counter;
//  2. decide (here, in Go, once) files the batch in order, each filing
//     seeing what the earlier ones filed, exactly as if each were filed
//     alone, and resolves the plan with the reserved IDs and the next
//     ticket numbers;
//  3. Write (the driver's SQL) writes the plan and moves the counter on:
//     SQLite a statement per table, PostgreSQL one statement.
//
// The rules (outcomes, event texts, what is sent, thread Message-IDs) are
// therefore written once; a driver only reads facts and writes rows.

// Ref is a filed report and its incident as Lookup finds it; Report is 0
// when there is none (for References: Incident is 0 when none threads).
type Ref struct {
	Report, Incident int64
	Ticket           string
	Status           string // the incident's (References only)
}

// Tagged is the incident a filing's ticket tag names (Incident 0: no
// incident has that ticket).
type Tagged struct {
	Incident  int64
	Requester string
	// Ticket and Status are the incident's: the tag may be the ticket of
	// an incident merged into it.
	Ticket, Status string
	// SenderFiled: the filing's sender has a report on that incident.
	SenderFiled bool
	// ConcernsSender: the incident concerns the constituent the sender
	// writes for (Filing.SenderConstituent).
	ConcernsSender bool
}

// Facts is what the store knows of one filing before its batch.
type Facts struct {
	SHA256 string // the spool row's
	Prev   Ref    // the report this spool row was filed as (a re-run)
	Dup    Ref    // a filed report with the filing's de-duplication key
	Refs   []Ref  // one per Filing.References entry, in order
	Tag    Tagged // Filing.Ticket's incident
}

// IDs are what Lookup reserves for a batch of n filings: at least n IDs
// each for new incidents and reports and MaxSends*n for outbox rows, in
// order (a batch uses the first ones; where the database has sequences the
// rest are gaps), and the year's ticket counter as it stands (locked until
// the commit: the batch's tickets follow it without a gap).
type IDs struct {
	Incidents, Reports, Outbox []int64
	LastTicket                 int
}

// MaxSends is the most outbox rows one filing queues: an acknowledgement
// or a follow-up, a staff alert mail and a webhook call.
const MaxSends = 3

// Plan is a resolved batch: the rows to write, with their IDs.
type Plan struct {
	Now        int64 // Unix microseconds of every row's times
	Incidents  []IncidentRow
	Reports    []ReportRow
	Rewrites   []ReportRow // reports filed again: new JSON, indicators replaced
	Indicators []IndicatorRow
	// Matches of new reports; RewriteMatches of reports filed again,
	// which replace their matches no notice has taken yet (those a notice
	// took stay, and are not added twice).
	Matches, RewriteMatches []MatchRow
	ThreadIDs               []ThreadRow
	Events                  []EventRow // in order
	Touched                 []int64    // incidents a report was attached to
	Reopened                []int64    // of those, the resolved ones that are open again
	Outbox                  []OutboxRow
	Done                    []DoneRow // queue rows finished, one per spool row
	// TicketYear's counter moves on to LastTicket when Tickets > 0.
	TicketYear, Tickets, LastTicket int
}

// IncidentRow is a new incident.
type IncidentRow struct {
	ID                                                      int64
	Ticket, Status, Taxonomy, Type, Subject, Requester, TLP string
}

// ReportRow is a new report (or, in Plan.Rewrites, a report's new JSON).
type ReportRow struct {
	ID, SpoolID, IncidentID           int64
	MessageID, DedupKey, Sender, JSON string
}

// IndicatorRow is one indicator of a report.
type IndicatorRow struct {
	ReportID, IncidentID int64
	Kind, Value          string
}

// MatchRow is one indicator of a report that belongs to a constituent.
type MatchRow struct {
	ReportID, IncidentID          int64
	Constituent, Kind, Value, TLP string
}

// ThreadRow maps a Message-ID (lower-case) to its incident; an existing
// mapping is kept.
type ThreadRow struct {
	MessageID  string
	IncidentID int64
}

// EventRow is one entry of an incident's log.
type EventRow struct {
	IncidentID   int64
	Kind, Detail string
}

// OutboxRow is a message to send (pending).
type OutboxRow struct {
	ID, IncidentID, ReportID            int64
	Kind, Recipient, MessageID, Payload string
}

// DoneRow finishes a queue row with the filing's outcome.
type DoneRow struct {
	SpoolID int64
	Outcome string
}

// File is FileBatch of one.
func (d *DB) File(ctx context.Context, f *store.Filing) (store.FileResult, error) {
	res, err := d.FileBatch(ctx, []*store.Filing{f})
	if err != nil {
		return store.FileResult{}, err
	}
	return res[0], nil
}

// FileBatch files processed spool rows in one transaction, in order, with
// exactly the result each would have alone, and finishes their queue rows.
// On error nothing is filed; the caller can file the rows one by one to
// find the bad one. The commit does not wait for the disk (LazyTx).
func (d *DB) FileBatch(ctx context.Context, fs []*store.Filing) ([]store.FileResult, error) {
	var out []store.FileResult
	err := d.LazyTx(ctx, func(tx *sql.Tx) error {
		now := d.Now()
		facts, ids, err := d.D.Lookup(ctx, tx, fs, now.UTC().Year())
		if err != nil {
			return err
		}
		p, res, err := decide(fs, facts, now, d.Prefix, ids)
		if err != nil {
			return err
		}
		out = res
		return d.D.Write(ctx, tx, p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// In decide, a row new in the batch is named by a negative number until
// its ID is known: -(k+1) for the k-th new incident or report.

// draftReport is a report the batch files.
type draftReport struct {
	filing   int
	report   int64 // a report filed again: its ID
	incident int64 // an ID, or negative: new in the batch
	key      string
	json     []byte
	inds     []store.Indicator
	matches  []store.Match
}

// pendingEvent is an event whose text may name a report not yet numbered.
type pendingEvent struct {
	incident int64
	kind     string
	text     func(report func(int64) int64) string
}

// batchRef is a report filed earlier in the batch (or before it) and its
// incident.
type batchRef struct{ report, incident int64 }

// decide files fs in order against facts and what the batch itself filed,
// resolves the plan with the reserved ids and the next ticket numbers, and
// returns the plan and each filing's result.
func decide(fs []*store.Filing, facts []Facts, now time.Time, prefix string, ids IDs) (*Plan, []store.FileResult, error) {
	res := make([]store.FileResult, len(fs))
	incRef := make([]int64, len(fs)) // each result's incident (may be negative)
	repRef := make([]int64, len(fs)) // and report
	var (
		newIncidents []int // filing of each new incident
		reports      []*draftReport
		rewrites     []*draftReport
		rewriteOf    = map[int64]*draftReport{}
		events       []pendingEvent
		touched      []int64
		touchedSeen  = map[int64]bool{}
		tickets      = map[int64]string{} // tickets of existing incidents
		filedAs      = map[int64]batchRef{}
		byKey        = map[string]batchRef{}
		threaded     = map[string]int64{}
		filedBy      = map[string]bool{}  // incident + "\x00" + sender
		statusOf     = map[int64]string{} // of existing incidents
		reopened     []int64
	)
	event := func(inc int64, kind string, text func(func(int64) int64) string) {
		events = append(events, pendingEvent{inc, kind, text})
	}
	fixed := func(s string) func(func(int64) int64) string { return func(func(int64) int64) string { return s } }
	sender := func(inc int64, s string) string { return fmt.Sprint(inc) + "\x00" + s }

	for i, f := range fs {
		fa := facts[i]
		// 1. This spool row was filed before (a crash re-run, reprocess).
		prev, again := filedAs[f.SpoolID]
		if !again && fa.Prev.Report != 0 {
			prev, again = batchRef{fa.Prev.Report, fa.Prev.Incident}, true
			tickets[fa.Prev.Incident] = fa.Prev.Ticket
		}
		if again {
			if prev.report < 0 {
				r := reports[-prev.report-1]
				r.json, r.inds, r.matches = f.ReportJSON, f.Indicators, f.Matches
			} else if r := rewriteOf[prev.report]; r != nil {
				r.json, r.inds, r.matches = f.ReportJSON, f.Indicators, f.Matches
			} else {
				r := &draftReport{filing: i, report: prev.report, incident: prev.incident, json: f.ReportJSON, inds: f.Indicators, matches: f.Matches}
				rewriteOf[prev.report] = r
				rewrites = append(rewrites, r)
			}
			filedAs[f.SpoolID] = prev
			spoolID := f.SpoolID
			event(prev.incident, "reprocessed", func(id func(int64) int64) string {
				return fmt.Sprintf("report %d re-derived from spool %d", id(prev.report), spoolID)
			})
			res[i].Outcome, incRef[i], repRef[i] = store.OutcomeReprocessed, prev.incident, prev.report
			continue
		}
		// 2. A duplicate of a filed message.
		key := store.DedupKey(f.MessageID, fa.SHA256)
		dup, isDup := byKey[key]
		if !isDup && fa.Dup.Report != 0 {
			dup, isDup = batchRef{fa.Dup.Report, fa.Dup.Incident}, true
			tickets[fa.Dup.Incident] = fa.Dup.Ticket
		}
		if isDup {
			spoolID := f.SpoolID
			event(dup.incident, "duplicate", func(id func(int64) int64) string {
				return fmt.Sprintf("spool %d repeats report %d (%s)", spoolID, id(dup.report), key)
			})
			res[i].Outcome, incRef[i], repRef[i] = store.OutcomeDuplicate, dup.incident, dup.report
			continue
		}
		// 3. Thread: References, then the ticket tag (with trust).
		var byRef int64
		for k, ref := range f.References {
			if r := fa.Refs[k]; r.Incident != 0 {
				byRef, tickets[r.Incident] = r.Incident, r.Ticket
				if _, ok := statusOf[r.Incident]; !ok {
					statusOf[r.Incident] = r.Status
				}
				break
			}
			if inc, ok := threaded[strings.ToLower(ref)]; ok {
				byRef = inc
				break
			}
		}
		var inc int64
		var note string
		if t := fa.Tag; f.Ticket != "" && t.Incident != 0 {
			tickets[t.Incident] = cmp.Or(t.Ticket, f.Ticket)
			if _, ok := statusOf[t.Incident]; !ok {
				statusOf[t.Incident] = t.Status
			}
			// Who the sender is counts only when the From is not forged.
			known := !f.SenderForged && (strings.EqualFold(t.Requester, f.Sender) || t.SenderFiled || t.ConcernsSender || filedBy[sender(t.Incident, f.Sender)])
			if f.Trusted || byRef == t.Incident || known {
				inc, note = t.Incident, "threaded by ticket tag"
			} else {
				// A stranger quoting a ticket tag: not on that ticket; the
				// tagged incident is told, so an analyst can merge by hand.
				what := "filed separately"
				if f.AttachOnly {
					what = fmt.Sprintf("not attached; kept as spool %d", f.SpoolID)
				}
				event(t.Incident, "tag-from-stranger", fixed(fmt.Sprintf("%s used the ticket tag without references or signature; %s", f.Sender, what)))
				note = "carried ticket tag " + f.Ticket + " from a sender not on that ticket"
			}
		} else if byRef != 0 {
			inc, note = byRef, "threaded by References"
		}
		if inc == 0 && f.AttachOnly {
			res[i] = store.FileResult{Outcome: store.OutcomeNoted, Note: note}
			continue
		}
		outcome, kind := store.OutcomeAttached, "report-attached"
		if inc == 0 {
			newIncidents = append(newIncidents, i)
			inc, outcome, kind = -int64(len(newIncidents)), store.OutcomeNew, "created"
		} else if inc > 0 && !touchedSeen[inc] {
			touchedSeen[inc] = true
			touched = append(touched, inc)
		}
		reports = append(reports, &draftReport{filing: i, incident: inc, key: key, json: f.ReportJSON, inds: f.Indicators, matches: f.Matches})
		rep := -int64(len(reports))
		filedAs[f.SpoolID], byKey[key] = batchRef{rep, inc}, batchRef{rep, inc}
		if f.MessageID != "" {
			if _, ok := threaded[strings.ToLower(f.MessageID)]; !ok {
				threaded[strings.ToLower(f.MessageID)] = inc
			}
		}
		filedBy[sender(inc, f.Sender)] = true
		who, suffix := f.Sender, ""
		if note != "" {
			suffix = "; " + note
		}
		event(inc, kind, func(id func(int64) int64) string { return fmt.Sprintf("report %d from %s%s", id(rep), who, suffix) })
		// A report on a resolved incident reopens it: it is not filed
		// silently into a closed one.
		if inc > 0 && statusOf[inc] == string(vocab.StatusResolved) {
			statusOf[inc] = string(vocab.StatusOpen)
			reopened = append(reopened, inc)
			who := f.Sender
			event(inc, "reopened", func(id func(int64) int64) string {
				return fmt.Sprintf("report %d from %s reopened the resolved incident", id(rep), who)
			})
		}
		if len(f.Matches) > 0 {
			about := concerns(f.Matches)
			event(inc, "constituents", func(id func(int64) int64) string { return fmt.Sprintf("report %d concerns %s", id(rep), about) })
		}
		res[i] = store.FileResult{Outcome: outcome, Note: note}
		incRef[i], repRef[i] = inc, rep
	}

	// What is sent: known by kind now, named once the tickets are.
	var sends []outbound
	for i, f := range fs {
		sends = append(sends, outboundOf(f, res[i].Outcome, i)...)
	}
	if len(ids.Incidents) < len(newIncidents) || len(ids.Reports) < len(reports) || len(ids.Outbox) < len(sends) {
		return nil, nil, fmt.Errorf("store: %d, %d, %d IDs reserved for %d incidents, %d reports, %d outbox rows",
			len(ids.Incidents), len(ids.Reports), len(ids.Outbox), len(newIncidents), len(reports), len(sends))
	}
	year := now.UTC().Year()
	for k := range newIncidents {
		tickets[ids.Incidents[k]] = vocab.Ticket{Prefix: prefix, Year: year, Seq: ids.LastTicket + 1 + k}.String()
	}
	incident := func(ref int64) int64 {
		if ref < 0 {
			return ids.Incidents[-ref-1]
		}
		return ref
	}
	report := func(ref int64) int64 {
		if ref < 0 {
			return ids.Reports[-ref-1]
		}
		return ref
	}

	p := &Plan{Now: Micros(now), Touched: touched, Reopened: reopened, TicketYear: year, Tickets: len(newIncidents), LastTicket: ids.LastTicket + len(newIncidents)}
	for k, i := range newIncidents {
		f := fs[i]
		id := ids.Incidents[k]
		p.Incidents = append(p.Incidents, IncidentRow{ID: id, Ticket: tickets[id], Status: string(vocab.StatusNew),
			Taxonomy: f.Taxonomy, Type: f.Type, Subject: truncate(f.Subject, 1000), Requester: f.Sender, TLP: f.TLP})
	}
	indicators := func(rep, inc int64, inds []store.Indicator) {
		for _, in := range inds {
			p.Indicators = append(p.Indicators, IndicatorRow{ReportID: rep, IncidentID: inc, Kind: string(in.Kind), Value: in.Value})
		}
	}
	matches := func(rows *[]MatchRow, rep, inc int64, ms []store.Match, tlp string) {
		for _, m := range ms {
			*rows = append(*rows, MatchRow{ReportID: rep, IncidentID: inc, Constituent: m.Constituent, Kind: string(m.Kind), Value: m.Value, TLP: tlp})
		}
	}
	for k, r := range reports {
		f := fs[r.filing]
		id, inc := ids.Reports[k], incident(r.incident)
		p.Reports = append(p.Reports, ReportRow{ID: id, SpoolID: f.SpoolID, IncidentID: inc, MessageID: f.MessageID,
			DedupKey: r.key, Sender: f.Sender, JSON: string(r.json)})
		indicators(id, inc, r.inds)
		matches(&p.Matches, id, inc, r.matches, f.TLP)
		if f.MessageID != "" {
			p.ThreadIDs = append(p.ThreadIDs, ThreadRow{strings.ToLower(f.MessageID), inc})
		}
	}
	for _, r := range rewrites {
		p.Rewrites = append(p.Rewrites, ReportRow{ID: r.report, JSON: string(r.json)})
		indicators(r.report, r.incident, r.inds)
		matches(&p.RewriteMatches, r.report, r.incident, r.matches, fs[r.filing].TLP)
	}
	for _, e := range events {
		p.Events = append(p.Events, EventRow{IncidentID: incident(e.incident), Kind: e.kind, Detail: e.text(report)})
	}
	doneAt := map[int64]int{}
	for i, f := range fs {
		r := &res[i]
		if r.Outcome != store.OutcomeNoted {
			r.IncidentID, r.ReportID = incident(incRef[i]), report(repRef[i])
			r.Ticket = tickets[r.IncidentID]
		}
		if j, ok := doneAt[f.SpoolID]; ok {
			p.Done[j].Outcome = r.Outcome
			continue
		}
		doneAt[f.SpoolID] = len(p.Done)
		p.Done = append(p.Done, DoneRow{SpoolID: f.SpoolID, Outcome: r.Outcome})
	}
	for k, o := range sends {
		r := &res[o.filing]
		row := OutboxRow{ID: ids.Outbox[k], IncidentID: r.IncidentID, ReportID: r.ReportID, Kind: o.kind, Recipient: o.recipient,
			MessageID: fmt.Sprintf("<%s.%s.%d.%s@%s>", ticketSlug(r.Ticket), o.kind, r.ReportID, unguessable(), o.domain)}
		payload, _ := json.Marshal(map[string]any{"report_id": r.ReportID})
		row.Payload = string(payload)
		p.Outbox = append(p.Outbox, row)
		// Replies to what we send thread to the ticket.
		p.ThreadIDs = append(p.ThreadIDs, ThreadRow{strings.ToLower(row.MessageID), r.IncidentID})
		if o.kind == store.OutboxAck || o.kind == store.OutboxFollowUp {
			r.AckID = row.ID
		}
	}
	return p, res, nil
}

// concerns names the constituents of matches with their counts:
// "acme (2 indicators), beta (1 indicator)".
func concerns(ms []store.Match) string {
	var order []string
	n := map[string]int{}
	for _, m := range ms {
		if n[m.Constituent] == 0 {
			order = append(order, m.Constituent)
		}
		n[m.Constituent]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s (%d %s)", c, n[c], plural(n[c], "indicator"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// outbound is one message a filing sends, before its ticket is known.
type outbound struct {
	filing                  int
	kind, recipient, domain string
}

// outboundOf is what a filing with this outcome sends: the acknowledgement
// of a new incident or the follow-up note of an attached report, and the
// staff alerts of a new incident.
func outboundOf(f *store.Filing, outcome string, i int) []outbound {
	if outcome != store.OutcomeNew && outcome != store.OutcomeAttached {
		return nil
	}
	var rows []outbound
	if a := f.Ack; a != nil && a.Recipient != "" {
		switch {
		case outcome == store.OutcomeNew:
			rows = append(rows, outbound{i, store.OutboxAck, a.Recipient, a.Domain})
		case a.FollowUp:
			rows = append(rows, outbound{i, store.OutboxFollowUp, a.Recipient, a.Domain})
		}
	}
	if a := f.Alert; a != nil && outcome == store.OutcomeNew {
		if a.DutyAddress != "" {
			rows = append(rows, outbound{i, store.OutboxAlert, a.DutyAddress, a.Domain})
		}
		if a.WebhookURL != "" {
			rows = append(rows, outbound{i, store.OutboxWebhook, a.WebhookURL, a.Domain})
		}
	}
	return rows
}

// unguessable is the random part of our Message-IDs. A reply naming one
// in References joins the incident without a ticket tag, so nobody who
// has not seen our message may be able to write it down: a Message-ID
// made only of the ticket and a counter let any stranger join any
// incident.
func unguessable() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ticketSlug turns CSIRT#2026-000123 into csirt-2026-000123 for Message-IDs.
func ticketSlug(t string) string {
	if tk, ok := vocab.ParseTicket(t); ok {
		return tk.Slug()
	}
	return strings.ToLower(strings.NewReplacer("#", "-", " ", "").Replace(t)) // an imported ticket of another form
}

// truncate cuts s to at most n bytes, at a UTF-8 character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// event appends one entry to an incident's log, with who did it ("" for
// the gateway itself).
func (d *DB) event(ctx context.Context, tx *sql.Tx, incidentID int64, kind, actor, detail string) error {
	_, err := d.exec(ctx, tx, `INSERT INTO events (incident_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)`,
		incidentID, Micros(d.Now()), kind, actor, detail)
	return err
}
