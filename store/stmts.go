package store

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements, kept by query text.
//
// On SQLite every statement run without one is compiled anew: in a profile
// of filing, SQLite's parser was a quarter of the store's CPU. The store's
// queries are a small fixed set of literals, so each one is prepared once
// and its compiled program reused for the life of the connection (modernc's
// driver keeps a single-statement program across executions).
//
// Preparing needs the connection, and SQLite has one, held by any open
// transaction: a statement first met inside a transaction runs unprepared
// that time and is put on a wanted list; the next transaction prepares the
// wanted ones before it takes the connection (prepareWanted). Inside a
// transaction a prepared statement is rebound with tx.StmtContext, which
// reuses the program compiled on that connection, or compiles it there if
// the connection was replaced.
//
// On PostgreSQL pgx already keeps a per-connection statement cache; only
// the ?→$n rewriting is kept here, so it is done once per query.
type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt // SQLite, by query text
	wanted map[string]bool      // SQLite, met in a transaction, not yet prepared
	pg     map[string]string    // PostgreSQL, ? form → $n form
}

// maxCachedStmts bounds the cache: the store's queries are literals (a few
// dozen); anything past the bound simply runs unprepared.
const maxCachedStmts = 256

// cachedStmt returns the prepared statement for query, or nil after
// noting that it is wanted.
func (s *Store) cachedStmt(query string) *sql.Stmt {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil {
		return st
	}
	if len(c.stmts)+len(c.wanted) < maxCachedStmts {
		if c.wanted == nil {
			c.wanted = map[string]bool{}
		}
		c.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the statements transactions met unprepared. It
// takes the connection for each, so it must not run inside a transaction
// or while holding a *sql.Conn. A statement that fails to prepare is
// dropped: running it unprepared reports the error where it belongs.
func (s *Store) prepareWanted(ctx context.Context) {
	if s.driver == Postgres {
		return
	}
	c := &s.stmts
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
	}
	c.wanted = nil
	c.mu.Unlock()
	for _, q := range queries {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts == nil {
			c.stmts = map[string]*sql.Stmt{}
		}
		if old := c.stmts[q]; old != nil {
			_ = st.Close()
		} else {
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// closeStmts closes the prepared statements (Close).
func (s *Store) closeStmts() {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts, c.wanted = nil, nil
}

// pgQuery rewrites ? placeholders to $n (s.q), once per query text.
func (s *Store) pgQuery(query string) string {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.pg[query]; ok {
		return r
	}
	r := rewritePlaceholders(query)
	if len(c.pg) < maxCachedStmts {
		if c.pg == nil {
			c.pg = map[string]string{}
		}
		c.pg[query] = r
	}
	return r
}

// exec runs query (in the ? form) in tx, prepared where it can be.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s.driver == Postgres {
		return tx.ExecContext(ctx, s.q(query), args...)
	}
	if st := s.cachedStmt(query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// queryRow is exec for a query returning one row.
func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s.driver == Postgres {
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
	if st := s.cachedStmt(query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// query is exec for a query returning rows.
func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if s.driver == Postgres {
		return tx.QueryContext(ctx, s.q(query), args...)
	}
	if st := s.cachedStmt(query); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}
