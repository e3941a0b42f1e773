package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// filePlainPipelined files a batch on PostgreSQL in three round trips when
// every filing in it plainly opens an incident (see fileBatchPostgres),
// which is what most reports do; the caller passes only batches whose
// filings mayOpenPlainly: the statements of fileBatchPostgres are
// sent as pgx pipelines on the connection underneath database/sql
// (begin with the read of the spool rows; the reports with the ticket
// numbers; the outbox and queue with the commit), where database/sql waits
// for each. Under load a round trip is a millisecond or more of waiting
// for the server to be scheduled, and the batch's counter lock is held for
// one round trip fewer.
//
// plain is false when some filing is not plain: nothing was written and
// the caller files the batch the general way. On error nothing was
// written either.
func (s *Store) filePlainPipelined(ctx context.Context, fs []*Filing) (out []FileResult, plain bool, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: not a pgx connection: %T", dc)
		}
		pc := sc.Conn()
		out, plain, err = s.pipeline(ctx, pc, fs)
		if err != nil || !plain {
			// Leave the connection as database/sql expects it: idle, or
			// closed and reported bad.
			if rerr := rollback(pc); rerr != nil {
				_ = pc.Close(context.Background())
				return errors.Join(err, driver.ErrBadConn)
			}
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, plain, nil
}

// rollback ends the transaction a failed or abandoned pipeline left open
// on pc, if any; an error means pc cannot be given back to the pool.
func rollback(pc *pgx.Conn) error {
	if pc.IsClosed() {
		return errors.New("connection closed")
	}
	if pc.PgConn().TxStatus() == 'I' {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pc.Exec(ctx, "ROLLBACK")
	return err
}

// pipeline is filePlainPipelined on the pgx connection.
func (s *Store) pipeline(ctx context.Context, pc *pgx.Conn, fs []*Filing) ([]FileResult, bool, error) {
	// 1. begin, read the spool rows and what they were filed as.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	q, args := prefetchStmt(fs)
	b.Queue(q, args...)
	br := pc.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, false, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, false, err
	}
	shas, plain, err := readPrefetch(rows, fs)
	rows.Close()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	keys := make([]string, len(fs))
	seen := make(map[string]bool, len(fs))
	which := make([]int, len(fs))
	for i, f := range fs {
		keys[i], which[i] = DedupKey(f.MessageID, shas[i]), i
		if !plain[i] || seen[keys[i]] {
			return nil, false, nil
		}
		seen[keys[i]] = true
	}

	// 2. the incidents, reports, indicators, Message-IDs and events, and
	// the ticket numbers.
	out := make([]FileResult, len(fs))
	now := s.now()
	year := now.UTC().Year()
	b = &pgx.Batch{}
	q, args = s.fileNewStmt(fs, which, keys, nil, out)
	b.Queue(q, args...)
	b.Queue(s.q(nextTicketsSQL), year, len(fs))
	br = pc.SendBatch(ctx, b)
	if rows, err = br.Query(); err == nil {
		err = readFileNew(rows, fs, which, out)
		rows.Close()
	}
	var last int
	if err == nil {
		err = br.QueryRow().Scan(&last)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, true, err
	}

	// 3. tickets, outbox, queue, commit.
	tickets := s.ticketNames(year, last, len(fs))
	created := make([]int64, len(fs))
	var ob []outboundRow
	for i, f := range fs {
		out[i].Ticket, created[i] = tickets[i], out[i].IncidentID
		ob = append(ob, outbound(f, &out[i], i)...)
	}
	b = &pgx.Batch{}
	q, args = s.finishStmt(fs, out, created, tickets, ob)
	b.Queue(q, args...)
	b.Queue("COMMIT")
	br = pc.SendBatch(ctx, b)
	if rows, err = br.Query(); err == nil {
		err = readFinish(rows, ob, out)
		rows.Close()
	}
	if err == nil {
		var tag interface{ String() string }
		if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("commit: %s", tag)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.pipelined.Add(1)
	return out, true, nil
}
