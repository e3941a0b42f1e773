package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also the database/sql driver "pgx"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a madoguchi store in a PostgreSQL database, which several
// daemons may share.
type Store struct {
	*sqlstore.DB
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn names, applies pending migrations
// (under an advisory lock, so that daemons starting at once do not apply
// one twice) and returns the store. An unreachable database is reported as
// store.ErrUnavailable.
func Open(ctx context.Context, dsn string, opt store.Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	lazyCfg := cfg.Copy()
	pinDurableCommits(cfg)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	// Claims, filings and outbox marks commit lazily (sqlstore.LazyTx): on
	// connections of their own whose sessions say so once, instead of a
	// statement in every transaction.
	if lazyCfg.RuntimeParams == nil {
		lazyCfg.RuntimeParams = map[string]string{}
	}
	lazyCfg.RuntimeParams["synchronous_commit"] = "off"
	lazyCfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	lazy := stdlib.OpenDB(*lazyCfg)
	lazy.SetMaxOpenConns(8)
	lazy.SetMaxIdleConns(4)
	// Four group-commit loops: the server flushes concurrent commits of
	// several connections together, which one loop would serialise.
	s := &Store{DB: sqlstore.New(db, db, dialect{}, opt, 4)}
	s.L = lazy
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("%w: %s", store.ErrUnavailable, sqlstore.OneLine(err))
	}
	if err := s.Migrate(ctx, migrations, `SELECT pg_advisory_xact_lock(727001)`); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// pinDurableCommits has every session of the daemon start with
// synchronous_commit on, whatever the server, database or role default is
// (a client's startup setting wins over those): a spool commit must be on
// disk before the 250, and a default of "off" would make it lazy without a
// word. The transactions that may be lazy (filing, claims, outbox marks)
// still say so themselves. A DSN (or PGOPTIONS) that names
// synchronous_commit, as a parameter or in options (e.g. options=-c
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

// LockMailbox takes the right to poll the mailbox key, without waiting: a
// session advisory lock held on a connection of its own. When the daemon
// holding it dies, its connection closes, the lock is released, and
// another daemon's next try takes over.
func (s *Store) LockMailbox(ctx context.Context, key string) (release func(), ok bool, err error) {
	h := fnv.New64a()
	h.Write([]byte("madoguchi imap " + key))
	lockID := int64(h.Sum64() >> 1)
	conn, err := s.W.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock mailbox: %v", store.ErrUnavailable, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, false, fmt.Errorf("%w: lock mailbox: %v", store.ErrUnavailable, err)
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockID)
		_ = conn.Close()
	}, true, nil
}

// ServerWarnings implements store.Store:
//   - fsync off: a crash of the server's machine can lose messages already
//     answered with a 250;
//   - autovacuum off: every message updates its queue and outbox rows more
//     than once, and without VACUUM those tables only grow with dead rows.
func (s *Store) ServerWarnings(ctx context.Context) ([]string, error) {
	var fsync, autovacuum string
	if err := s.W.QueryRowContext(ctx, `SELECT current_setting('fsync'), current_setting('autovacuum')`).Scan(&fsync, &autovacuum); err != nil {
		return nil, fmt.Errorf("%w: server settings: %v", store.ErrUnavailable, err)
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

// dialect is PostgreSQL's part of the shared SQL and of filing.
type dialect struct{}

// Rebind turns ? placeholders into $1, $2, ….
func (dialect) Rebind(query string) string {
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

// Begin: the pool the connection came from says whether its commit waits
// for the disk (sqlstore.DB.L).
func (dialect) Begin(ctx context.Context, conn *sql.Conn, durable bool) (*sql.Tx, error) {
	return conn.BeginTx(ctx, nil)
}

func (dialect) SkipLocked() string { return " FOR UPDATE SKIP LOCKED" }
