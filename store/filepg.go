package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// fileBatchPostgres is FileBatch on PostgreSQL in a handful of statements
// for the whole batch instead of three or more per filing: each statement
// is a round trip, and on a busy machine a round trip means the server
// and the daemon each waiting to be scheduled, so a batch of eight new
// reports took some thirty of them (about 4 ms of store time per report at
// 360 msg/s on two cores). Now:
//
//  1. one query reads every filing's spool row, its earlier report (crash
//     re-run) and a report it duplicates (it also makes the commit lazy);
//  2. the filings that plainly open an incident (neither filed before nor a
//     duplicate, no ticket tag, no References, and no key an earlier filing
//     of the batch used) are written together by one statement
//     (fileNewPostgres); any other filing is flushed in order and goes the
//     general way (file), so it sees every filing before it, as alone;
//  3. one upsert takes the batch's ticket numbers;
//  4. one statement numbers the new incidents, queues what is sent (with
//     the Message-IDs for threading) and finishes the queue rows.
//
// When no filing carries a ticket tag or References, the batch is first
// tried as pgx pipelines (filePlainPipelined: three round trips with BEGIN
// and COMMIT); if the first of them finds a filing that is not plain, it
// is rolled back and the batch goes the way above (five round trips for
// new reports). The results are those of filing one by one; the
// conformance suite holds both drivers and both ways to that.
func (s *Store) fileBatchPostgres(ctx context.Context, fs []*Filing) ([]FileResult, error) {
	if slices.IndexFunc(fs, func(f *Filing) bool { return !f.mayOpenPlainly() }) < 0 {
		if out, plain, err := s.filePlainPipelined(ctx, fs); err != nil || plain {
			return out, err
		}
	}
	out := make([]FileResult, len(fs))
	err := s.commitTx(ctx, false, func(tx *sql.Tx) error {
		shas, plain, err := s.prefetchPostgres(ctx, tx, fs)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(fs))
		var pending []int
		flush := func() error {
			if len(pending) == 0 {
				return nil
			}
			keys := make([]string, len(pending))
			for j, i := range pending {
				keys[j] = DedupKey(fs[i].MessageID, shas[i])
			}
			err := s.fileNewPostgres(ctx, tx, fs, pending, keys, nil, out)
			pending = pending[:0]
			return err
		}
		for i, f := range fs {
			key := DedupKey(f.MessageID, shas[i])
			if plain[i] && f.mayOpenPlainly() && !seen[key] {
				pending = append(pending, i)
				seen[key] = true
				continue
			}
			seen[key] = true
			if err := flush(); err != nil {
				return err
			}
			if out[i], err = s.file(ctx, tx, f); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		created, tickets, err := s.numberIncidents(ctx, tx, out)
		if err != nil {
			return err
		}
		var rows []outboundRow
		for i, f := range fs {
			rows = append(rows, outbound(f, &out[i], i)...)
		}
		return s.finishBatchPostgres(ctx, tx, fs, out, created, tickets, rows)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mayOpenPlainly: nothing in the filing ties it to an incident (a ticket
// tag or References). Whether it was filed before or repeats a filed
// report only the store can tell (prefetchStmt).
func (f *Filing) mayOpenPlainly() bool {
	return f.Ticket == "" && len(f.References) == 0 && !f.AttachOnly
}

// prefetchPostgres reads, for each filing, its spool row's SHA-256 and
// whether it is plain: neither filed before nor a duplicate of a filed
// report. It also makes the transaction's commit lazy (see lazyTx): the
// setting rides on this first query instead of costing a round trip.
func (s *Store) prefetchPostgres(ctx context.Context, tx *sql.Tx, fs []*Filing) ([]string, []bool, error) {
	q, args := prefetchStmt(fs)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	return readPrefetch(rows, fs)
}

// rowSource is what database/sql's and pgx's rows have in common.
type rowSource interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// prefetchStmt is prefetchPostgres's query.
func prefetchStmt(fs []*Filing) (string, []any) {
	ids := make([]int64, len(fs))
	keys := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.SpoolID
		if f.MessageID != "" {
			keys[i] = DedupKey(f.MessageID, "")
		}
	}
	return `SELECT u.n, s.sha256, r.id IS NULL AND d.id IS NULL
		FROM (SELECT set_config('synchronous_commit', 'off', true)) AS lazy,
			unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS u(spool_id, key, n)
		JOIN spool s ON s.id = u.spool_id
		LEFT JOIN reports r ON r.spool_id = s.id
		LEFT JOIN reports d ON d.dedup_key = COALESCE(NULLIF(u.key, ''), 'sha256:' || s.sha256)`, []any{ids, keys}
}

// readPrefetch reads prefetchStmt's rows.
func readPrefetch(rows rowSource, fs []*Filing) ([]string, []bool, error) {
	shas := make([]string, len(fs))
	plain := make([]bool, len(fs))
	found := make([]bool, len(fs))
	for rows.Next() {
		var n int
		var sha string
		var p bool
		if err := rows.Scan(&n, &sha, &p); err != nil {
			return nil, nil, err
		}
		shas[n-1], plain[n-1], found[n-1] = sha, p, true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for i, ok := range found {
		if !ok {
			return nil, nil, fmt.Errorf("spool %d: %w", fs[i].SpoolID, sql.ErrNoRows)
		}
	}
	return shas, plain, nil
}

// fileNewPostgres files the filings fs[which] as reports that each open an
// incident, in one statement: the incidents (under their provisional
// tickets, see newIncident), the reports, their indicators, their
// Message-IDs for threading and the "created" events, which the general
// path writes in five or more statements each. keys are the filings'
// de-duplication keys and notes, when not nil, their notes, both in the
// order of which. It sets out[i] for each i in which.
func (s *Store) fileNewPostgres(ctx context.Context, tx *sql.Tx, fs []*Filing, which []int, keys, notes []string, out []FileResult) error {
	q, args := s.fileNewStmt(fs, which, keys, notes, out)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return readFileNew(rows, fs, which, out)
}

// fileNewStmt is fileNewPostgres's statement; it sets out[i] for each i in
// which but for the IDs, which readFileNew reads.
func (s *Store) fileNewStmt(fs []*Filing, which []int, keys, notes []string, out []FileResult) (string, []any) {
	n := len(which)
	var (
		spoolIDs                                                    = make([]int64, n)
		provisional, taxonomy, typ, subject, sender, tlp, mid, body = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		lowerMID, suffix                                            = make([]string, n), make([]string, n)
		indSpool                                                    []int64
		indKind, indValue                                           []string
	)
	for j, i := range which {
		f := fs[i]
		spoolIDs[j], provisional[j] = f.SpoolID, provisionalTicket(f.SpoolID)
		taxonomy[j], typ[j], subject[j], sender[j], tlp[j] = f.Taxonomy, f.Type, truncate(f.Subject, 1000), f.Sender, f.TLP
		mid[j], lowerMID[j], body[j] = f.MessageID, strings.ToLower(f.MessageID), string(f.ReportJSON)
		note := ""
		if notes != nil {
			note = notes[j]
		}
		if note != "" {
			suffix[j] = "; " + note
		}
		out[i] = FileResult{Outcome: OutcomeNew, Ticket: provisional[j], Note: note}
		for _, in := range f.Indicators {
			indSpool = append(indSpool, f.SpoolID)
			indKind = append(indKind, in.Kind)
			indValue = append(indValue, in.Value)
		}
	}
	return `WITH u AS (
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
			WITH ORDINALITY AS u(spool_id, ticket, taxonomy, type, subject, sender, tlp, message_id, dedup_key, report_json, lower_mid, suffix, n)
	), inc AS (
		INSERT INTO incidents (ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at)
		SELECT u.ticket, $13, u.taxonomy, u.type, u.subject, u.sender, u.tlp, $14, $14 FROM u ORDER BY u.n
		RETURNING id, ticket
	), rep AS (
		INSERT INTO reports (spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at)
		SELECT u.spool_id, inc.id, u.message_id, u.dedup_key, u.sender, u.report_json, $14, $14
		FROM u JOIN inc ON inc.ticket = u.ticket ORDER BY u.n
		RETURNING id, incident_id, spool_id
	), ind AS (
		INSERT INTO indicators (report_id, incident_id, kind, value)
		SELECT rep.id, rep.incident_id, x.kind, x.value
		FROM unnest($15::bigint[], $16::text[], $17::text[]) WITH ORDINALITY AS x(spool_id, kind, value, n)
		JOIN rep ON rep.spool_id = x.spool_id ORDER BY x.n
	), thr AS (
		INSERT INTO thread_ids (message_id, incident_id)
		SELECT u.lower_mid, inc.id FROM u JOIN inc ON inc.ticket = u.ticket WHERE u.lower_mid <> '' ORDER BY u.n
		ON CONFLICT (message_id) DO NOTHING
	), ev AS (
		INSERT INTO events (incident_id, at, kind, detail)
		SELECT rep.incident_id, $14, 'created', 'report ' || rep.id || ' from ' || u.sender || u.suffix
		FROM rep JOIN u ON u.spool_id = rep.spool_id ORDER BY u.n
	)
	SELECT spool_id, incident_id, id FROM rep`, []any{
			spoolIDs, provisional, taxonomy, typ, subject, sender, tlp, mid, keys, body, lowerMID, suffix,
			StatusNew, micros(s.now()), indSpool, indKind, indValue}
}

// readFileNew reads fileNewStmt's rows into out.
func readFileNew(rows rowSource, fs []*Filing, which []int, out []FileResult) error {
	n := len(which)
	at := make(map[int64]int, n)
	for _, i := range which {
		at[fs[i].SpoolID] = i
	}
	got := 0
	for rows.Next() {
		var spoolID, incidentID, reportID int64
		if err := rows.Scan(&spoolID, &incidentID, &reportID); err != nil {
			return err
		}
		i, ok := at[spoolID]
		if !ok {
			return fmt.Errorf("filing: report for spool %d not asked for", spoolID)
		}
		out[i].IncidentID, out[i].ReportID = incidentID, reportID
		got++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("filing: %d of %d reports written", got, n)
	}
	return nil
}

// finishBatchPostgres ends a batch in one statement: the new incidents get
// their tickets, the outbound rows are queued with their Message-IDs for
// threading, and the queue rows are marked done with their outcomes. Each
// outbound row's outbox ID is read back by its Message-ID; an
// acknowledgement's or follow-up's goes to its filing's AckID.
func (s *Store) finishBatchPostgres(ctx context.Context, tx *sql.Tx, fs []*Filing, out []FileResult, created []int64, tickets []string, ob []outboundRow) error {
	q, args := s.finishStmt(fs, out, created, tickets, ob)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return readFinish(rows, ob, out)
}

// finishStmt is finishBatchPostgres's statement.
func (s *Store) finishStmt(fs []*Filing, out []FileResult, created []int64, tickets []string, ob []outboundRow) (string, []any) {
	now := micros(s.now())
	spoolIDs := make([]int64, len(fs))
	outcomes := make([]string, len(fs))
	for i, f := range fs {
		spoolIDs[i], outcomes[i] = f.SpoolID, out[i].Outcome
	}
	var (
		incidentIDs, reportIDs                 = make([]int64, len(ob)), make([]int64, len(ob))
		kinds, recipients, mids, lower, bodies = make([]string, len(ob)), make([]string, len(ob)), make([]string, len(ob)), make([]string, len(ob)), make([]string, len(ob))
	)
	for j, o := range ob {
		incidentIDs[j], reportIDs[j], kinds[j], recipients[j], mids[j], bodies[j] = o.incidentID, o.reportID, o.kind, o.recipient, o.messageID, o.payload
		lower[j] = strings.ToLower(o.messageID)
	}
	if created == nil {
		created, tickets = []int64{}, []string{}
	}
	return `WITH t AS (
		UPDATE incidents i SET ticket = u.ticket FROM unnest($1::bigint[], $2::text[]) AS u(id, ticket) WHERE i.id = u.id
	), done AS (
		UPDATE queue q SET state = $3, outcome = u.outcome, reason = '', last_error = '', lease_until = 0, updated_at = $4
		FROM unnest($5::bigint[], $6::text[]) AS u(spool_id, outcome) WHERE q.spool_id = u.spool_id
	), o AS (
		INSERT INTO outbox (incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
		SELECT u.incident_id, u.report_id, u.kind, u.recipient, u.message_id, u.payload, $7, $4, $4, $4
		FROM unnest($8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY
			AS u(incident_id, report_id, kind, recipient, message_id, payload, n)
		ORDER BY u.n
		RETURNING id, message_id
	), thr AS (
		INSERT INTO thread_ids (message_id, incident_id)
		SELECT u.message_id, u.incident_id FROM unnest($14::text[], $8::bigint[]) AS u(message_id, incident_id)
		ON CONFLICT (message_id) DO NOTHING
	)
	SELECT id, message_id FROM o`, []any{
			created, tickets, StateDone, now, spoolIDs, outcomes,
			OutboxPending, incidentIDs, reportIDs, kinds, recipients, mids, bodies, lower}
}

// readFinish reads finishStmt's rows: each outbound row's outbox ID, by
// its Message-ID; an acknowledgement's or follow-up's goes to its filing's
// AckID.
func readFinish(rows rowSource, ob []outboundRow, out []FileResult) error {
	byMID := make(map[string]int, len(ob))
	for j, o := range ob {
		byMID[o.messageID] = j
	}
	got := 0
	for rows.Next() {
		var id int64
		var mid string
		if err := rows.Scan(&id, &mid); err != nil {
			return err
		}
		j, ok := byMID[mid]
		if !ok {
			return fmt.Errorf("outbox: row %s not asked for", mid)
		}
		if o := ob[j]; o.answersReporter() {
			out[o.filing].AckID = id
		}
		got++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got != len(ob) {
		return fmt.Errorf("outbox: %d of %d rows queued", got, len(ob))
	}
	return nil
}
