package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// Filing on PostgreSQL takes three statements per batch, whatever its
// size: each statement is a round trip to the server, and a statement per
// row made a batch of eight reports some thirty of them.

// lookupSQL reads the facts of a batch in one query: a row 's' per filing
// (its spool row's hash, the report it was filed as, a report with its
// de-duplication key), a row 'r' per Reference that threads, a row 't'
// per ticket tag that names an incident.
const lookupSQL = `WITH u AS (
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(spool_id, key, ticket, sender, n)
	), x AS (
		SELECT * FROM unnest($5::bigint[], $6::bigint[], $7::text[]) AS x(n, k, mid)
	)
	SELECT 's', u.n, 0::bigint, s.sha256, r.id, r.incident_id, ri.ticket, d.id, d.incident_id, di.ticket, false
		FROM u JOIN spool s ON s.id = u.spool_id
		LEFT JOIN reports r ON r.spool_id = s.id LEFT JOIN incidents ri ON ri.id = r.incident_id
		LEFT JOIN reports d ON d.dedup_key = COALESCE(NULLIF(u.key, ''), 'sha256:' || s.sha256) LEFT JOIN incidents di ON di.id = d.incident_id
	UNION ALL
	SELECT 'r', x.n, x.k, '', NULL, t.incident_id, i.ticket, NULL, NULL, NULL, false
		FROM x JOIN thread_ids t ON t.message_id = x.mid JOIN incidents i ON i.id = t.incident_id
	UNION ALL
	SELECT 't', u.n, 0, i.requester, NULL, i.id, NULL, NULL, NULL, NULL,
		EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.sender = u.sender)
		FROM u JOIN incidents i ON i.ticket = u.ticket WHERE u.ticket <> ''`

// Lookup implements sqlstore.Dialect.
func (dialect) Lookup(ctx context.Context, tx *sql.Tx, fs []*store.Filing) ([]sqlstore.Facts, error) {
	n := len(fs)
	spoolIDs := make([]int64, n)
	keys, tickets, senders := make([]string, n), make([]string, n), make([]string, n)
	var refN, refK []int64
	var refMID []string
	out := make([]sqlstore.Facts, n)
	for i, f := range fs {
		spoolIDs[i], tickets[i], senders[i] = f.SpoolID, f.Ticket, f.Sender
		if f.MessageID != "" {
			keys[i] = store.DedupKey(f.MessageID, "")
		}
		out[i].Refs = make([]sqlstore.Ref, len(f.References))
		for k, ref := range f.References {
			refN, refK, refMID = append(refN, int64(i+1)), append(refK, int64(k)), append(refMID, strings.ToLower(ref))
		}
	}
	rows, err := tx.QueryContext(ctx, lookupSQL, spoolIDs, keys, tickets, senders, refN, refK, refMID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make([]bool, n)
	for rows.Next() {
		var kind, text string
		var i, k int64
		var a, b, c, e sql.NullInt64
		var t1, t2 sql.NullString
		var flag bool
		if err := rows.Scan(&kind, &i, &k, &text, &a, &b, &t1, &c, &e, &t2, &flag); err != nil {
			return nil, err
		}
		fa := &out[i-1]
		switch kind {
		case "s":
			found[i-1] = true
			fa.SHA256 = text
			fa.Prev = sqlstore.Ref{Report: a.Int64, Incident: b.Int64, Ticket: t1.String}
			fa.Dup = sqlstore.Ref{Report: c.Int64, Incident: e.Int64, Ticket: t2.String}
		case "r":
			fa.Refs[k] = sqlstore.Ref{Incident: b.Int64, Ticket: t1.String}
		case "t":
			fa.Tag = sqlstore.Tagged{Incident: b.Int64, Requester: text, SenderFiled: flag}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("spool %d: %w", fs[i].SpoolID, sql.ErrNoRows)
		}
	}
	return out, nil
}

// allocateSQL takes the year's ticket numbers (the counter row stays
// locked until the commit, so numbers are sequential and unique across
// daemons) and the IDs of the new rows from their sequences.
const allocateSQL = `WITH c AS (
		INSERT INTO ticket_counters (year, last) SELECT $1, $2 WHERE $2 > 0
		ON CONFLICT (year) DO UPDATE SET last = ticket_counters.last + excluded.last RETURNING last
	)
	SELECT COALESCE((SELECT last FROM c), 0),
		array_to_string(ARRAY(SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $3)), ','),
		array_to_string(ARRAY(SELECT nextval(pg_get_serial_sequence('reports', 'id')) FROM generate_series(1, $4)), ','),
		array_to_string(ARRAY(SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, $5)), ',')`

// Allocate implements sqlstore.Dialect.
func (dialect) Allocate(ctx context.Context, tx *sql.Tx, n sqlstore.Counts, year int) (sqlstore.IDs, error) {
	var ids sqlstore.IDs
	var inc, rep, ob string
	if err := tx.QueryRowContext(ctx, allocateSQL, year, n.Incidents, n.Incidents, n.Reports, n.Outbox).Scan(&ids.LastTicket, &inc, &rep, &ob); err != nil {
		return ids, err
	}
	var err error
	for _, l := range []struct {
		text string
		to   *[]int64
		want int
	}{{inc, &ids.Incidents, n.Incidents}, {rep, &ids.Reports, n.Reports}, {ob, &ids.Outbox, n.Outbox}} {
		if *l.to, err = int64s(l.text); err != nil {
			return ids, err
		}
		if len(*l.to) != l.want {
			return ids, fmt.Errorf("store: %d IDs for %d rows", len(*l.to), l.want)
		}
	}
	return ids, nil
}

func int64s(list string) ([]int64, error) {
	if list == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	out := make([]int64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// writeSQL writes a plan in one statement. Its parts see the same
// snapshot: the DELETE of a re-filed report's indicators does not see the
// ones inserted beside it; the foreign keys are checked at its end.
const writeSQL = `WITH inc AS (
		INSERT INTO incidents (id, ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at)
		SELECT u.*, $37::bigint, $37::bigint FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u
	), rep AS (
		INSERT INTO reports (id, spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at)
		SELECT u.*, $37::bigint, $37::bigint FROM unnest($9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[]) AS u
	), rew AS (
		UPDATE reports r SET report_json = u.js, updated_at = $37::bigint FROM unnest($16::bigint[], $17::text[]) AS u(id, js) WHERE r.id = u.id
	), del AS (
		DELETE FROM indicators WHERE report_id = ANY($16::bigint[])
	), ind AS (
		INSERT INTO indicators (report_id, incident_id, kind, value)
		SELECT u.r, u.i, u.k, u.v FROM unnest($18::bigint[], $19::bigint[], $20::text[], $21::text[]) WITH ORDINALITY AS u(r, i, k, v, n) ORDER BY u.n
	), thr AS (
		INSERT INTO thread_ids (message_id, incident_id)
		SELECT * FROM unnest($22::text[], $23::bigint[]) ON CONFLICT (message_id) DO NOTHING
	), ev AS (
		INSERT INTO events (incident_id, at, kind, detail)
		SELECT u.i, $37::bigint, u.k, u.d FROM unnest($24::bigint[], $25::text[], $26::text[]) WITH ORDINALITY AS u(i, k, d, n) ORDER BY u.n
	), tch AS (
		UPDATE incidents SET updated_at = $37::bigint WHERE id = ANY($27::bigint[])
	), ob AS (
		INSERT INTO outbox (id, incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
		SELECT u.*, $38, $37::bigint, $37::bigint, $37::bigint
		FROM unnest($28::bigint[], $29::bigint[], $30::bigint[], $31::text[], $32::text[], $33::text[], $34::text[]) AS u
	), done AS (
		UPDATE queue q SET state = $39, outcome = u.o, reason = '', last_error = '', lease_until = 0, updated_at = $37::bigint
		FROM unnest($35::bigint[], $36::text[]) AS u(s, o) WHERE q.spool_id = u.s
	)
	SELECT 1`

// Write implements sqlstore.Dialect.
func (dialect) Write(ctx context.Context, tx *sql.Tx, p *sqlstore.Plan) error {
	var (
		iID                                              []int64
		iTicket, iStatus, iTax, iType, iSubj, iReq, iTLP []string
	)
	for _, in := range p.Incidents {
		iID = append(iID, in.ID)
		iTicket, iStatus, iTax = append(iTicket, in.Ticket), append(iStatus, in.Status), append(iTax, in.Taxonomy)
		iType, iSubj, iReq, iTLP = append(iType, in.Type), append(iSubj, in.Subject), append(iReq, in.Requester), append(iTLP, in.TLP)
	}
	var rID, rSpool, rInc []int64
	var rMID, rKey, rSender, rJSON []string
	for _, r := range p.Reports {
		rID, rSpool, rInc = append(rID, r.ID), append(rSpool, r.SpoolID), append(rInc, r.IncidentID)
		rMID, rKey, rSender, rJSON = append(rMID, r.MessageID), append(rKey, r.DedupKey), append(rSender, r.Sender), append(rJSON, r.JSON)
	}
	var wID []int64
	var wJSON []string
	for _, r := range p.Rewrites {
		wID, wJSON = append(wID, r.ID), append(wJSON, r.JSON)
	}
	var nRep, nInc []int64
	var nKind, nVal []string
	for _, in := range p.Indicators {
		nRep, nInc, nKind, nVal = append(nRep, in.ReportID), append(nInc, in.IncidentID), append(nKind, in.Kind), append(nVal, in.Value)
	}
	var tMID []string
	var tInc []int64
	for _, t := range p.ThreadIDs {
		tMID, tInc = append(tMID, t.MessageID), append(tInc, t.IncidentID)
	}
	var eInc []int64
	var eKind, eDetail []string
	for _, e := range p.Events {
		eInc, eKind, eDetail = append(eInc, e.IncidentID), append(eKind, e.Kind), append(eDetail, e.Detail)
	}
	var oID, oInc, oRep []int64
	var oKind, oRcpt, oMID, oPayload []string
	for _, o := range p.Outbox {
		oID, oInc, oRep = append(oID, o.ID), append(oInc, o.IncidentID), append(oRep, o.ReportID)
		oKind, oRcpt, oMID, oPayload = append(oKind, o.Kind), append(oRcpt, o.Recipient), append(oMID, o.MessageID), append(oPayload, o.Payload)
	}
	var dSpool []int64
	var dOutcome []string
	for _, q := range p.Done {
		dSpool, dOutcome = append(dSpool, q.SpoolID), append(dOutcome, q.Outcome)
	}
	_, err := tx.ExecContext(ctx, writeSQL,
		nn(iID), nn(iTicket), nn(iStatus), nn(iTax), nn(iType), nn(iSubj), nn(iReq), nn(iTLP),
		nn(rID), nn(rSpool), nn(rInc), nn(rMID), nn(rKey), nn(rSender), nn(rJSON),
		nn(wID), nn(wJSON),
		nn(nRep), nn(nInc), nn(nKind), nn(nVal),
		nn(tMID), nn(tInc),
		nn(eInc), nn(eKind), nn(eDetail),
		nn(p.Touched),
		nn(oID), nn(oInc), nn(oRep), nn(oKind), nn(oRcpt), nn(oMID), nn(oPayload),
		nn(dSpool), nn(dOutcome),
		p.Now, store.OutboxPending, store.StateDone)
	return err
}

// nn is s, or an empty array where s is nil (pgx sends a nil slice as NULL,
// which unnest takes for no rows too, but ANY would not).
func nn[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
