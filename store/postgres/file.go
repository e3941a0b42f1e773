package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// Filing on PostgreSQL takes two statements per batch, whatever its
// size: each statement is a round trip to the server, and a statement per
// row made a batch of eight reports some thirty of them.

// lookupSQL reads the facts of a batch in one query: a row 's' per filing
// (its spool row's hash, the report it was filed as, a report with its
// de-duplication key), a row 'a' with the IDs reserved from the sequences
// and the year's ticket counter (locked until the commit), with refs a row 'r' per Reference that threads, and
// with tags a row 't' per ticket tag that names an incident. (A branch no
// filing of the batch needs is left out: PostgreSQL plans each execution
// of the statement, and most batches need the first alone.)
func lookupSQL(refs, tags bool) string {
	q := `WITH cnt AS (
		SELECT last FROM ticket_counters WHERE year = $8 FOR UPDATE
	), u AS (
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $11::text[]) WITH ORDINALITY AS u(spool_id, key, ticket, sender, sc, n)
	), x AS (
		SELECT * FROM unnest($5::bigint[], $6::bigint[], $7::text[]) AS x(n, k, mid)
	)
	SELECT 's', u.n, 0::bigint, s.sha256, r.id, r.incident_id, ri.ticket, d.id, d.incident_id, di.ticket, false
		FROM u JOIN spool s ON s.id = u.spool_id
		LEFT JOIN reports r ON r.spool_id = s.id LEFT JOIN incidents ri ON ri.id = r.incident_id
		LEFT JOIN reports d ON d.dedup_key = COALESCE(NULLIF(u.key, ''), 'sha256:' || s.sha256) LEFT JOIN incidents di ON di.id = d.incident_id
	UNION ALL
	SELECT 'a', 0, 0, array_to_string(ARRAY(SELECT nextval('incidents_id_seq') FROM generate_series(1, $9)), ','), (SELECT last FROM cnt)::bigint, NULL,
		array_to_string(ARRAY(SELECT nextval('reports_id_seq') FROM generate_series(1, $9)), ','), NULL, NULL,
		array_to_string(ARRAY(SELECT nextval('outbox_id_seq') FROM generate_series(1, $10)), ','), (SELECT last FROM cnt) IS NOT NULL`
	if refs {
		q += `
	UNION ALL
	SELECT 'r', x.n, x.k, i.status, NULL, t.incident_id, i.ticket, NULL, NULL, NULL, false
		FROM x JOIN thread_ids t ON t.message_id = x.mid JOIN incidents i ON i.id = t.incident_id`
	}
	if tags {
		q += `
	UNION ALL
	SELECT 't', u.n, 0, i.requester, NULL, i.id, i.ticket,
		CASE WHEN u.sc <> '' AND EXISTS (SELECT 1 FROM constituent_matches m WHERE m.incident_id = i.id AND m.constituent = u.sc) THEN 1 ELSE 0 END, NULL, i.status,
		EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.sender = u.sender)
		FROM u JOIN incidents o ON o.ticket = u.ticket JOIN incidents i ON i.id = CASE WHEN o.merged_into <> 0 THEN o.merged_into ELSE o.id END
		WHERE u.ticket <> ''`
	}
	return q
}

// Lookup implements sqlstore.Dialect.
func (dialect) Lookup(ctx context.Context, tx *sql.Tx, fs []*store.Filing, year int) ([]sqlstore.Facts, sqlstore.IDs, error) {
	var ids sqlstore.IDs
	counted := false
	n := len(fs)
	spoolIDs := make([]int64, n)
	keys, tickets, senders, senderCons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	var refN, refK []int64
	var refMID []string
	out := make([]sqlstore.Facts, n)
	for i, f := range fs {
		spoolIDs[i], tickets[i], senders[i], senderCons[i] = f.SpoolID, f.Ticket, f.Sender, f.SenderConstituent
		if f.MessageID != "" {
			keys[i] = store.DedupKey(f.MessageID, "")
		}
		out[i].Refs = make([]sqlstore.Ref, len(f.References))
		for k, ref := range f.References {
			refN, refK, refMID = append(refN, int64(i+1)), append(refK, int64(k)), append(refMID, strings.ToLower(ref))
		}
	}
	tagged := slices.ContainsFunc(fs, func(f *store.Filing) bool { return f.Ticket != "" })
	rows, err := tx.QueryContext(ctx, lookupSQL(len(refN) > 0, tagged), spoolIDs, keys, tickets, senders, refN, refK, refMID, year, n, sqlstore.MaxSends*n, senderCons)
	if err != nil {
		return nil, ids, err
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
			return nil, ids, err
		}
		if kind == "a" {
			if ids.Incidents, err = int64s(text); err == nil {
				if ids.Reports, err = int64s(t1.String); err == nil {
					ids.Outbox, err = int64s(t2.String)
				}
			}
			if err != nil {
				return nil, ids, err
			}
			ids.LastTicket, counted = int(a.Int64), flag
			continue
		}
		fa := &out[i-1]
		switch kind {
		case "s":
			found[i-1] = true
			fa.SHA256 = text
			fa.Prev = sqlstore.Ref{Report: a.Int64, Incident: b.Int64, Ticket: t1.String}
			fa.Dup = sqlstore.Ref{Report: c.Int64, Incident: e.Int64, Ticket: t2.String}
		case "r":
			fa.Refs[k] = sqlstore.Ref{Incident: b.Int64, Ticket: t1.String, Status: text}
		case "t":
			fa.Tag = sqlstore.Tagged{Incident: b.Int64, Requester: text, Ticket: t1.String, Status: t2.String, SenderFiled: flag, ConcernsSender: c.Int64 == 1}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, ids, err
	}
	for i, ok := range found {
		if !ok {
			return nil, ids, fmt.Errorf("spool %d: %w", fs[i].SpoolID, sql.ErrNoRows)
		}
	}
	if !counted {
		// The year's first filing: its counter row is made, and locked.
		if _, err := tx.ExecContext(ctx, `INSERT INTO ticket_counters (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING`, year); err != nil {
			return nil, ids, err
		}
		if err := tx.QueryRowContext(ctx, `SELECT last FROM ticket_counters WHERE year = $1 FOR UPDATE`, year).Scan(&ids.LastTicket); err != nil {
			return nil, ids, err
		}
	}
	return out, ids, nil
}

// int64s reads a comma-separated list of IDs.
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
	), mat AS (
		INSERT INTO constituent_matches (report_id, incident_id, constituent, kind, value, tlp, created_at)
		SELECT u.r, u.i, u.c, u.k, u.v, u.t, $37::bigint FROM unnest($42::bigint[], $43::bigint[], $44::text[], $45::text[], $46::text[], $47::text[]) WITH ORDINALITY AS u(r, i, c, k, v, t, n) ORDER BY u.n
	), mdel AS (
		DELETE FROM constituent_matches WHERE report_id = ANY($16::bigint[]) AND noticed_at = 0
	), mrew AS (
		INSERT INTO constituent_matches (report_id, incident_id, constituent, kind, value, tlp, created_at)
		SELECT u.r, u.i, u.c, u.k, u.v, u.t, $37::bigint FROM unnest($48::bigint[], $49::bigint[], $50::text[], $51::text[], $52::text[], $53::text[]) WITH ORDINALITY AS u(r, i, c, k, v, t, n)
		WHERE NOT EXISTS (SELECT 1 FROM constituent_matches m WHERE m.report_id = u.r AND m.constituent = u.c AND m.kind = u.k AND m.value = u.v AND m.noticed_at <> 0)
		ORDER BY u.n
	), thr AS (
		INSERT INTO thread_ids (message_id, incident_id)
		SELECT * FROM unnest($22::text[], $23::bigint[]) ON CONFLICT (message_id) DO NOTHING
	), ev AS (
		INSERT INTO events (incident_id, at, kind, detail)
		SELECT u.i, $37::bigint, u.k, u.d FROM unnest($24::bigint[], $25::text[], $26::text[]) WITH ORDINALITY AS u(i, k, d, n) ORDER BY u.n
	), tch AS (
		UPDATE incidents SET updated_at = $37::bigint, status = CASE WHEN id = ANY($54::bigint[]) THEN 'open' ELSE status END WHERE id = ANY($27::bigint[])
	), ob AS (
		INSERT INTO outbox (id, incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
		SELECT u.*, $38, $37::bigint, $37::bigint, $37::bigint
		FROM unnest($28::bigint[], $29::bigint[], $30::bigint[], $31::text[], $32::text[], $33::text[], $34::text[]) AS u
	), cnt AS (
		UPDATE ticket_counters SET last = $40 WHERE year = $41 AND last < $40
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
	mcols := func(ms []sqlstore.MatchRow) (rep, inc []int64, con, kind, val, tlp []string) {
		for _, m := range ms {
			rep, inc = append(rep, m.ReportID), append(inc, m.IncidentID)
			con, kind, val, tlp = append(con, m.Constituent), append(kind, m.Kind), append(val, m.Value), append(tlp, m.TLP)
		}
		return
	}
	mRep, mInc, mCon, mKind, mVal, mTLP := mcols(p.Matches)
	xRep, xInc, xCon, xKind, xVal, xTLP := mcols(p.RewriteMatches)
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
		p.Now, store.OutboxPending, store.StateDone, p.LastTicket, p.TicketYear,
		nn(mRep), nn(mInc), nn(mCon), nn(mKind), nn(mVal), nn(mTLP),
		nn(xRep), nn(xInc), nn(xCon), nn(xKind), nn(xVal), nn(xTLP),
		nn(p.Reopened))
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
