package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"
)

// TestSQLiteStatementsPreparedOnceAndSurviveANewConnection: after the first
// filing the statements it met are prepared and used by the next ones; when
// SQLite's one connection is replaced, the prepared statements are compiled
// again on the new one and filing goes on.
func TestSQLiteStatementsPreparedOnceAndSurviveANewConnection(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, SQLite, &clock{t: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)})
	file := func(i int) FileResult {
		t.Helper()
		id := spool(t, s, fmt.Sprintf("Subject: %d\r\n\r\nx", i))
		res, err := s.File(ctx, &Filing{SpoolID: id, MessageID: fmt.Sprintf("<p%d@x.example>", i), Sender: "a@x.example", Subject: "s",
			ReportJSON: []byte(`{}`), Indicators: []Indicator{{Kind: "ipv4", Value: "192.0.2.1"}, {Kind: "domain", Value: "x.example"}},
			Ack: &AckRequest{Recipient: "a@x.example", Domain: "csirt.example.org"}})
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		return res
	}
	cached := func() int {
		s.stmts.mu.Lock()
		defer s.stmts.mu.Unlock()
		return len(s.stmts.stmts)
	}
	// prepared reads the cache without cachedStmt, which would put q on
	// the wanted list and so change what the next transaction prepares.
	prepared := func(q string) bool {
		s.stmts.mu.Lock()
		defer s.stmts.mu.Unlock()
		return s.stmts.stmts[q] != nil
	}
	if n := cached(); n != 0 {
		t.Fatalf("%d statements prepared before any transaction", n)
	}
	file(1)
	file(2) // prepares what the first met
	n := cached()
	for _, q := range []string{
		`INSERT INTO indicators (report_id, incident_id, kind, value) VALUES (?, ?, ?, ?)`,
		`INSERT INTO events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)`,
		`INSERT INTO thread_ids (message_id, incident_id) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`,
	} {
		if !prepared(q) {
			t.Errorf("not prepared after two filings: %s", q)
		}
	}
	file(3)
	if m := cached(); m != n {
		t.Errorf("a third filing prepared %d more statements; the first two should have met them all", m-n)
	}

	// Replace the connection: the pool drops a connection that reports
	// ErrBadConn, and the next transaction opens a new one.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
	res := file(4)
	if res.Outcome != OutcomeNew || res.Ticket != "CSIRT#2026-000004" {
		t.Errorf("after a new connection: %+v", res)
	}
	var inds int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM indicators`).Scan(&inds); err != nil || inds != 8 {
		t.Errorf("indicators %d (%v), want 8", inds, err)
	}
}
