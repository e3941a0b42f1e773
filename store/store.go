package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also the database/sql driver "pgx"
	_ "modernc.org/sqlite"           // database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors for callers' branch points.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrUnavailable = errors.New("store: unavailable")
)

// Driver names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Options tune a Store; zero values mean defaults.
type Options struct {
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// TicketPrefix is the PREFIX of PREFIX#YYYY-NNNNNN. Default "CSIRT".
	TicketPrefix string
}

// Store is a madoguchi store on either driver.
type Store struct {
	db     *sql.DB
	driver string
	now    func() time.Time
	prefix string
	dsn    string
	gate   *writeGate // SQLite only
	stmts  stmtCache
	rdb    *sql.DB // readers: SQLite's own pool, PostgreSQL's db

	walPath string        // SQLite: the WAL file that syncWAL flushes
	walIno  atomic.Uint64 // the WAL file whose directory entry is synced
	synced  func()        // tests: called after each syncWAL
	// pipelined counts batches filed by filePlainPipelined (tests).
	pipelined atomic.Int64
}

// Open connects, applies pending migrations and returns the store. An
// unreachable database is reported as ErrUnavailable.
func Open(ctx context.Context, driver, dsn string, opt Options) (*Store, error) {
	s := &Store{driver: driver, now: opt.Now, prefix: opt.TicketPrefix, dsn: dsn}
	if s.now == nil {
		s.now = time.Now
	}
	if s.prefix == "" {
		s.prefix = "CSIRT"
	}
	var err error
	switch driver {
	case SQLite:
		if dir := filepath.Dir(dsn); dir != "" && !strings.HasPrefix(dsn, "file:") {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			// Created by us, for the owner alone (SQLite gives its WAL
			// and shared-memory files the database file's mode).
			if !strings.ContainsAny(dsn, "?:") {
				f, err := os.OpenFile(dsn, os.O_RDONLY|os.O_CREATE, 0o600)
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
				}
				_ = f.Close()
			}
		}
		// One connection: SQLite has one writer anyway, and a single
		// connection serialises transactions without SQLITE_BUSY spinning.
		// synchronous=NORMAL: a commit does not wait for the disk while it
		// holds the connection; a durable commit (tx, SpoolBatch) fsyncs
		// the WAL after it has let the connection go (syncWAL).
		s.db, err = sql.Open("sqlite", sqliteDSN(dsn, "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"))
		if err == nil {
			s.db.SetMaxOpenConns(1)
			s.gate = newWriteGate()
			s.walPath = strings.TrimPrefix(dsn, "file:") + "-wal"
		}
	case Postgres:
		var cfg *pgx.ConnConfig
		cfg, err = pgx.ParseConfig(dsn)
		if err == nil {
			pinDurableCommits(cfg)
			s.db = stdlib.OpenDB(*cfg)
			s.db.SetMaxOpenConns(16)
			s.db.SetMaxIdleConns(8)
		}
	default:
		return nil, fmt.Errorf("store: unknown driver %q", driver)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.db.PingContext(pctx); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, oneLine(err))
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	s.rdb = s.db
	if driver == Postgres {
		s.preferLZ4(ctx)
		s.warmPool(ctx)
	}
	if driver == SQLite {
		// Readers of their own: in WAL mode reading does not wait for the
		// writer, so loading a claimed message or counting an address's
		// acknowledgements no longer queues behind spool commits and
		// filings on the one writing connection. query_only makes a write
		// sent here by mistake an error instead of a second writer.
		s.rdb, err = sql.Open("sqlite", sqliteDSN(dsn, "_pragma=query_only(1)"))
		if err != nil {
			_ = s.db.Close()
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		s.rdb.SetMaxOpenConns(2)
	}
	return s, nil
}

// pinDurableCommits has every session of the daemon start with
// synchronous_commit on, whatever the server, database or role default is
// (a client's startup setting wins over those): a spool commit must be on
// disk before the 250, and a default of "off" would make it lazy without a
// word. The statements that may be lazy (filing, claims, outbox marks) still
// say so themselves. A DSN (or PGOPTIONS) that names synchronous_commit,
// as a parameter or in options (e.g. options=-c
// synchronous_commit=remote_apply), is the operator's choice and is kept.
func pinDurableCommits(cfg *pgx.ConnConfig) {
	if _, ok := cfg.RuntimeParams["synchronous_commit"]; ok || strings.Contains(cfg.RuntimeParams["options"], "synchronous_commit") {
		return
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
}

// sqliteDSN is the modernc DSN for the database file dsn with the pragmas
// every connection needs, then extra (the writer's or the readers' own).
func sqliteDSN(dsn, extra string) string {
	return "file:" + strings.TrimPrefix(dsn, "file:") +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&" + extra
}

// lz4Columns are the large values PostgreSQL compresses when it stores
// them out of line (TOAST): the raw messages and the report JSON.
var lz4Columns = []struct{ table, column string }{{"spool", "raw"}, {"spool_chunks", "data"}, {"reports", "report_json"}}

// preferLZ4 has PostgreSQL compress the large columns with LZ4 instead of
// its default pglz, where the server was built with LZ4 (Debian's is):
// pglz_compress was the largest single function in a profile of the
// server while the daemon filed. It is a column setting made once (the
// first start after an upgrade takes a brief exclusive lock per table);
// nothing fails where LZ4 is missing, and values already stored keep
// their compression.
func (s *Store) preferLZ4(ctx context.Context) {
	var ok bool
	if err := s.db.QueryRowContext(ctx, `SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'`).Scan(&ok); err != nil || !ok {
		return
	}
	for _, c := range lz4Columns {
		var comp string
		err := s.db.QueryRowContext(ctx, `SELECT attcompression::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`, c.table, c.column).Scan(&comp)
		if err != nil || comp == "l" {
			continue
		}
		_, _ = s.db.ExecContext(ctx, `ALTER TABLE `+c.table+` ALTER COLUMN `+c.column+` SET COMPRESSION lz4`)
	}
}

// oneLine folds a (pgconn, multi-address) error into one line, dropping
// repeats, so the CLI can print one clear line.
func oneLine(err error) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// Close closes the database.
func (s *Store) Close() error {
	s.closeStmts()
	if s.rdb != s.db {
		_ = s.rdb.Close()
	}
	return s.db.Close()
}

// Driver returns the driver name.
func (s *Store) Driver() string { return s.driver }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the handle for driver-specific features (advisory locks).
func (s *Store) DB() *sql.DB { return s.db }

// q is query in the driver's placeholder style: ? for SQLite, $n for
// PostgreSQL (rewritten once per query text, see pgQuery).
func (s *Store) q(query string) string {
	if s.driver != Postgres {
		return query
	}
	return s.pgQuery(query)
}

// rewritePlaceholders turns ? placeholders into $1, $2, ….
func rewritePlaceholders(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func micros(t time.Time) int64 { return t.UnixMicro() }
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("store: bad migration name %s", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// LatestMigration is the schema version this build expects.
func LatestMigration() int {
	ms, _ := migrations()
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

func (s *Store) dialect(sqlText string) string {
	id, blob := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
	if s.driver == Postgres {
		id, blob = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA"
	}
	return strings.NewReplacer("{{ID}}", id, "{{BLOB}}", blob).Replace(sqlText)
}

// migrate applies pending migrations, each in its own transaction. On
// PostgreSQL an advisory transaction lock keeps two daemons starting at once
// from applying the same migration twice.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	for _, m := range ms {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if s.driver == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(727001)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if strings.HasSuffix(m.name, ".postgres.sql") && s.driver != Postgres {
				m.sql = "" // PostgreSQL's alone: recorded, nothing to do
			}
			for _, stmt := range splitSQL(s.dialect(m.sql)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, micros(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration: %w", err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

func splitSQL(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// lazyTx runs fn in a transaction whose commit need not reach the disk
// before it returns (PostgreSQL's synchronous_commit off): for claims,
// leases and filings, never for the spool. A claim lost in a power loss
// leaves its row ready, to be claimed again, which is what a crashed
// worker's claim comes to anyway; a filing lost with it is redone from the
// queue; every stage after a claim is idempotent. Commits are flushed in
// order, so the next durable commit (a spool, an outbox claim) makes every
// lazy one before it durable too. It saves a WAL flush per claim and filing,
// and a spool waiting for the connection waits that much less.
//
// On SQLite it is a transaction without the syncWAL that durable ones end
// with (the connection runs with synchronous=NORMAL).
func (s *Store) lazyTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.driver == Postgres {
		return s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			return fn(tx)
		})
	}
	return s.commitTx(ctx, false, fn)
}

// warmPool opens the connections a busy daemon uses at once (the group
// committer, two workers, the outbox writer) and has each read the
// catalogue of the tables it files into, so that the first second after a
// start does not pay for new server processes and their first look at
// every table while mail arrives: at 280 msg/s a just-started daemon's
// 250→filed p99 went from 112–474 ms to 81–244 ms with eight and to
// 119–150 ms with four (docs/benchmarks.md).
// Four, not the pool's eight idle: tests open many stores on one server.
// Best effort.
func (s *Store) warmPool(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conns []*sql.Conn
	for range warmConns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.ExecContext(ctx, warmSQL)
		}()
	}
	wg.Wait()
	for _, c := range conns {
		_ = c.Close()
	}
}

// warmConns is how many connections warmPool opens.
const warmConns = 4

// warmSQL touches every table filing uses.
var warmSQL = `SELECT 1 FROM ` + strings.Join(append(slices.Clone(plannedTables), "ticket_counters"), ", ") + ` LIMIT 0`

// syncWAL makes every SQLite commit so far durable: it fsyncs the WAL file,
// which is what synchronous=FULL does inside the commit, while the
// connection is held. In WAL mode a transaction is committed when its
// frames, ending with the commit frame, are in the WAL; SQLite with
// synchronous=NORMAL writes them without an fsync and fsyncs the WAL before
// each checkpoint copies frames into the database file (and that file after
// it), and reuses the WAL from its start only after a complete checkpoint.
// So after this fsync a commit's frames are on the disk either in the WAL
// or, checkpointed, in the synced database file; frames a later
// transaction writes meanwhile are flushed too, which only makes more
// durable. The file is opened by name each time, so it is the WAL that
// SQLite uses now; the first time a WAL file is seen its directory is
// fsynced too (SQLite does that on its own first sync of a new WAL, which
// is now this one). Linux: fsync on any descriptor flushes the file.
func (s *Store) syncWAL() error {
	f, err := os.Open(s.walPath)
	if err != nil {
		return fmt.Errorf("%w: sync: %v", ErrUnavailable, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: sync: %v", ErrUnavailable, err)
	}
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && s.walIno.Load() != uint64(st.Ino) {
			if err := syncDir(filepath.Dir(s.walPath)); err != nil {
				return fmt.Errorf("%w: sync: %v", ErrUnavailable, err)
			}
			s.walIno.Store(uint64(st.Ino))
		}
	}
	if s.synced != nil {
		s.synced()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tx runs fn in a transaction, committing on nil and rolling back
// otherwise; nil means the commit is durable (on SQLite after syncWAL).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.commitTx(ctx, false, fn); err != nil {
		return err
	}
	return s.durable()
}

// durable makes every commit so far durable: PostgreSQL's commits already
// are (synchronous_commit on); SQLite's connection commits without an
// fsync, so syncWAL.
func (s *Store) durable() error {
	if s.driver != SQLite {
		return nil
	}
	return s.syncWAL()
}

// commitTx runs fn in a transaction and commits it; on SQLite it holds the
// one connection (the gate) from begin to commit and no longer: a durable
// commit's fsync (syncWAL) is taken after the gate is left, so that the
// filings and claims waiting for the connection go on during it.
func (s *Store) commitTx(ctx context.Context, high bool, fn func(*sql.Tx) error) (err error) {
	if s.gate != nil {
		s.gate.enter(high)
		defer s.gate.leave()
		s.prepareWanted(ctx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", ErrUnavailable, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %v", ErrUnavailable, err)
	}
	return nil
}
