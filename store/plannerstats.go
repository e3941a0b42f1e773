package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// plannedTables are the tables whose size the daemon's statements depend on
// for their plans: every filing reads or writes each of them.
var plannedTables = []string{"spool", "queue", "reports", "incidents", "indicators", "events", "thread_ids", "outbox"}

// minAnalyzePages is the size (in 8 KiB pages) below which a table's plan
// does not matter enough to analyze it.
const minAnalyzePages = 8

// RefreshPlannerStatistics runs ANALYZE (PostgreSQL only) on each table the
// filing path uses whose size has more than doubled since PostgreSQL last
// measured it (relpages in pg_class; never measured counts as zero), once
// it has grown past minAnalyzePages. It returns the tables it analyzed.
// Tables the daemon's role does not own (so may not ANALYZE: PostgreSQL
// would only warn and skip them) are left to autovacuum.
//
// Why: pgx prepares each statement once per connection, and PostgreSQL
// keeps a generic plan for it made with the sizes the planner knew then.
// On a new or freshly imported database those are the sizes of empty
// tables, so the joins of a filing are planned as sequential scans and
// keep being run that way while the tables grow; autovacuum's first
// ANALYZE comes only after its naptime (a minute by default). Measured at
// 385 msg/s on a new database: the 250→filed p50 rose from 10 to 40 ms
// within that minute, and filing at full speed slowed from ~700 to 525
// msg/s over 30,000 messages (docs/benchmarks.md). ANALYZE changes the
// statistics, which makes every session plan its statements again. The
// doubling rule keeps this to about log2(size) runs over a database's
// life; where autovacuum runs, its own thresholds act first once the
// tables are large (this machine's server runs without it).
func (s *Store) RefreshPlannerStatistics(ctx context.Context) ([]string, error) {
	if s.driver != Postgres {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t FROM unnest($1::text[]) AS t
		JOIN pg_class c ON c.oid = to_regclass(t)
		WHERE pg_has_role(c.relowner, 'MEMBER')
			AND pg_relation_size(c.oid) / current_setting('block_size')::bigint > GREATEST($2, 2 * c.relpages::bigint)`,
		plannedTables, minAnalyzePages)
	if err != nil {
		return nil, fmt.Errorf("%w: planner statistics: %v", ErrUnavailable, err)
	}
	var grown []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			_ = rows.Close()
			return nil, err
		}
		grown = append(grown, t)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	var done []string
	for _, t := range grown {
		if _, err := s.db.ExecContext(ctx, `ANALYZE `+pgx.Identifier{t}.Sanitize()); err != nil {
			return done, fmt.Errorf("%w: analyze %s: %v", ErrUnavailable, t, err)
		}
		done = append(done, t)
	}
	return done, nil
}

// KeepPlannerStatistics calls RefreshPlannerStatistics every interval until
// ctx ends, reporting what it did (or failed to do) to report, which may be
// nil.
func (s *Store) KeepPlannerStatistics(ctx context.Context, every time.Duration, report func([]string, error)) {
	if s.driver != Postgres {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, err := s.RefreshPlannerStatistics(ctx)
		if err != nil && ctx.Err() != nil {
			return // stopping: the check was cut short, nothing to report
		}
		if report != nil && (err != nil || len(done) > 0) {
			report(done, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ServerWarnings names the PostgreSQL server settings that work against the
// daemon, for it to log at start (nil on SQLite):
//   - fsync off: a crash of the server's machine can lose messages already
//     answered with a 250;
//   - autovacuum off: every message updates its queue row and outbox row
//     more than once, and without VACUUM those tables only grow with dead
//     rows (the daemon keeps the planner's statistics itself, but does not
//     vacuum).
func (s *Store) ServerWarnings(ctx context.Context) ([]string, error) {
	if s.driver != Postgres {
		return nil, nil
	}
	var fsync, autovacuum string
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('fsync'), current_setting('autovacuum')`).Scan(&fsync, &autovacuum); err != nil {
		return nil, fmt.Errorf("%w: server settings: %v", ErrUnavailable, err)
	}
	var out []string
	if fsync == "off" {
		out = append(out, "PostgreSQL runs with fsync off: a crash of its machine can lose messages already acknowledged with a 250")
	}
	if autovacuum == "off" {
		out = append(out, "PostgreSQL runs with autovacuum off: the queue and outbox tables grow with dead rows unless they are vacuumed (VACUUM queue, outbox) regularly")
	}
	return out, nil
}
