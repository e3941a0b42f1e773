package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a madoguchi store in an SQLite file.
type Store struct {
	*sqlstore.DB
	mu     sync.Mutex
	polled map[string]bool // mailboxes a poller of this process holds
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it, for the owner alone) the database file path,
// applies pending migrations and returns the store. A database that
// cannot be opened is reported as store.ErrUnavailable.
//
// Writes go through one connection: SQLite has one writer anyway, and a
// single connection serialises transactions without SQLITE_BUSY spinning.
// Every commit is durable when it returns (synchronous=FULL: the WAL is
// flushed inside the commit). Reads have connections of their own: in WAL
// mode reading does not wait for the writer, and query_only makes a write
// sent there by mistake an error instead of a second writer.
func Open(ctx context.Context, path string, opt store.Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" && !strings.HasPrefix(path, "file:") {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		// Created by us, for the owner alone (SQLite gives its WAL and
		// shared-memory files the database file's mode).
		if !strings.ContainsAny(path, "?:") {
			f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
			}
			_ = f.Close()
		}
	}
	w, err := sql.Open("sqlite", dsn(path, "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	r.SetMaxOpenConns(2)
	s := &Store{DB: sqlstore.New(w, r, dialect{}, opt, 1), polled: map[string]bool{}}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.PingContext(pctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("%w: %s", store.ErrUnavailable, sqlstore.OneLine(err))
	}
	if err := s.Migrate(ctx, migrations, ""); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// dsn is the modernc DSN for the database file path with the pragmas every
// connection needs, then extra (the writer's or the readers' own).
func dsn(path, extra string) string {
	return "file:" + strings.TrimPrefix(path, "file:") +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&" + extra
}

// LockMailbox keeps two pollers of this process off one mailbox: an SQLite
// store belongs to one process.
func (s *Store) LockMailbox(ctx context.Context, key string) (release func(), ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.polled[key] {
		return nil, false, nil
	}
	s.polled[key] = true
	return func() {
		s.mu.Lock()
		delete(s.polled, key)
		s.mu.Unlock()
	}, true, nil
}

// ServerWarnings implements store.Store: SQLite has no server.
func (s *Store) ServerWarnings(context.Context) ([]string, error) { return nil, nil }

// dialect is SQLite's part of the shared SQL and of filing.
type dialect struct{}

func (dialect) Rebind(q string) string { return q }

// Begin sets the commit's flush before it begins (SQLite takes the setting
// only outside a transaction): synchronous=FULL flushes the WAL inside the
// commit; NORMAL writes it without a flush, and the next FULL commit's
// flush covers it too (the WAL is one file, appended in order).
func (dialect) Begin(ctx context.Context, conn *sql.Conn, durable bool) (*sql.Tx, error) {
	mode := "NORMAL"
	if durable {
		mode = "FULL"
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
		return nil, err
	}
	return conn.BeginTx(ctx, nil)
}

func (dialect) SkipLocked() string                     { return "" }
func (dialect) lookupErr(spool int64, err error) error { return fmt.Errorf("spool %d: %w", spool, err) }
func noRows(err error) bool                            { return errors.Is(err, sql.ErrNoRows) }
