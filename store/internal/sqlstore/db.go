package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// Dialect is what a driver package supplies: its SQL where the databases
// differ, and the two halves of filing that touch the database (Lookup and
// Write; the decisions between them are Plan's, made once here).
type Dialect interface {
	// Rebind turns the ? placeholders of the shared SQL into the
	// database's own.
	Rebind(query string) string
	// Begin begins a transaction on conn whose commit waits for the disk
	// (durable) or not (see DB.LazyTx).
	Begin(ctx context.Context, conn *sql.Conn, durable bool) (*sql.Tx, error)
	// SkipLocked is the row-locking clause that lets concurrent claims
	// pass each other's rows ("" where the database has one writer).
	SkipLocked() string
	// Lookup reads what the store knows of each filing before the batch,
	// reserves IDs for the rows it may add (see IDs) and reads the year's
	// ticket counter, which stays locked until the commit.
	Lookup(ctx context.Context, tx *sql.Tx, fs []*store.Filing, year int) ([]Facts, IDs, error)
	// Write writes a resolved plan.
	Write(ctx context.Context, tx *sql.Tx, p *Plan) error
}

// DB is the part of a store that is the same SQL on every database. A
// driver package opens the connections, runs Migrate and embeds it.
type DB struct {
	// W is the handle for writes; R for reads (the same on a server
	// database; SQLite reads on connections of their own). L, when not
	// nil, is a pool whose sessions commit without waiting for the disk,
	// for LazyTx (PostgreSQL); without one, Dialect.Begin makes a
	// transaction lazy (SQLite).
	W, R, L *sql.DB
	D       Dialect
	Now     func() time.Time
	Prefix  string
	writers int
	latest  int
}

// New returns a DB over the handles; opt's zero values mean defaults.
// writers is the group committer's loop count (store.Store.Writers).
func New(w, r *sql.DB, d Dialect, opt store.Options, writers int) *DB {
	db := &DB{W: w, R: r, D: d, Now: opt.Now, Prefix: opt.TicketPrefix, writers: writers}
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.Prefix == "" {
		db.Prefix = "CSIRT"
	}
	return db
}

// Writers implements store.Store.
func (d *DB) Writers() int { return d.writers }

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.W.PingContext(ctx) }

// SQL exposes the write handle (tests).
func (d *DB) SQL() *sql.DB { return d.W }

// Close closes the handles.
func (d *DB) Close() error {
	if d.R != d.W {
		_ = d.R.Close()
	}
	if d.L != nil {
		_ = d.L.Close()
	}
	return d.W.Close()
}

// LazyExec runs one statement whose commit need not wait for the disk (see
// LazyTx): alone on the lazy pool where there is one, else in a LazyTx.
func (d *DB) LazyExec(ctx context.Context, query string, args ...any) error {
	if d.L != nil {
		_, err := d.L.ExecContext(ctx, d.q(query), args...)
		return err
	}
	return d.LazyTx(ctx, func(tx *sql.Tx) error {
		_, err := d.exec(ctx, tx, query, args...)
		return err
	})
}

// q is query in the database's placeholder style.
func (d *DB) q(query string) string { return d.D.Rebind(query) }

func (d *DB) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, d.q(query), args...)
}

func (d *DB) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	return tx.QueryRowContext(ctx, d.q(query), args...)
}

// Micros is how times are stored: Unix microseconds.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// FromMicros reads a stored time; 0 is the zero time.
func FromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// Tx runs fn in a transaction, committing on nil and rolling back
// otherwise; nil means the commit is durable.
func (d *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return d.tx(ctx, true, fn)
}

func (d *DB) tx(ctx context.Context, durable bool, fn func(*sql.Tx) error) (err error) {
	pool := d.W
	if !durable && d.L != nil {
		pool = d.L
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	defer conn.Close()
	tx, err := d.D.Begin(ctx, conn, durable)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", store.ErrUnavailable, err)
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
		return fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
	}
	return nil
}

// LazyTx runs fn in a transaction whose commit need not reach the disk
// before it returns: for claims, outbox marks and filings, never for the
// spool. A claim lost in a power loss leaves its row ready, to be claimed
// again, which is what a crashed worker's claim comes to anyway; a filing
// lost with it is redone from the queue; every stage after a claim is
// idempotent. Commits reach the disk in order, so the next durable commit
// (a spool, an outbox claim) makes every lazy one before it durable too:
// no reporter learns of a ticket before it is on disk, since the
// acknowledgement that carries it is taken by ClaimOutbox's durable commit.
func (d *DB) LazyTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return d.tx(ctx, false, fn)
}

// Migration is one schema step of a driver's history.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations reads a driver's migrations/NNNN_name.sql files in order.
func Migrations(fsys fs.FS) ([]Migration, error) {
	ents, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range ents {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("store: bad migration name %s", e.Name())
		}
		b, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate applies the pending migrations of fsys, each in its own
// transaction; lock, when not empty, is run first in each (PostgreSQL's
// advisory lock, so that two daemons starting at once do not apply one
// twice).
func (d *DB) Migrate(ctx context.Context, fsys fs.FS, lock string) error {
	ms, err := Migrations(fsys)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		d.latest = ms[len(ms)-1].Version
	}
	if _, err := d.W.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	for _, m := range ms {
		err := d.Tx(ctx, func(tx *sql.Tx) error {
			if lock != "" {
				if _, err := tx.ExecContext(ctx, lock); err != nil {
					return err
				}
			}
			var n int
			if err := d.queryRow(ctx, tx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range splitSQL(m.SQL) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", m.Name, err)
				}
			}
			_, err := d.exec(ctx, tx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, Micros(d.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration: %w", err)
		}
	}
	return nil
}

// LatestMigration is the schema version this build expects.
func (d *DB) LatestMigration() int { return d.latest }

// SchemaVersion returns the highest applied migration.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := d.W.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// splitSQL splits a migration into statements at lines ending in ";",
// leaving out comment lines.
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

// OneLine folds a (pgconn, multi-address) error into one line, dropping
// repeats, so the CLI can print one clear line.
func OneLine(err error) string {
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
