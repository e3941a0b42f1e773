package store

import (
	"context"
	"errors"
	"sync"
)

// Committer spools messages with group commit: one goroutine takes every
// message that arrived while the previous commit was running and commits
// them together in one transaction, so one fsync covers many arrivals. Each
// caller's Spool returns only after the commit that holds its message, so
// "nil means durable" holds exactly as for Store.Spool.
//
// There is no timer: a lone message is committed at once (no added latency
// at low load), and batches form by themselves under load, as long as the
// previous commit took.
type Committer struct {
	s        *Store
	reqs     chan *spoolReq
	maxBatch int
	wg       sync.WaitGroup
	closeMu  sync.RWMutex
	closed   bool
	// SQLite: committed batches waiting for their fsync (syncer).
	unsynced chan []*spoolReq
	syncWG   sync.WaitGroup
}

type spoolReq struct {
	m   *Message
	res chan spoolRes
	id  int64 // committed as, waiting for the syncer
}

type spoolRes struct {
	id  int64
	err error
}

// ErrClosed is returned by a Committer after Close.
var ErrClosed = errors.New("store: committer closed")

// NewCommitter starts a group committer of at most maxBatch messages (or
// bytes beyond 16 MiB, whichever comes first) per transaction.
//
// On SQLite one loop commits (there is one writer connection anyway). On
// PostgreSQL, which flushes concurrent commits of several connections
// together itself, a single loop would serialise what the server can
// overlap, so four loops share the arrivals.
func (s *Store) NewCommitter(maxBatch int) *Committer {
	if maxBatch < 1 {
		maxBatch = 64
	}
	loops := 1
	if s.driver == Postgres {
		loops = 4
	}
	c := &Committer{s: s, reqs: make(chan *spoolReq, maxBatch*4), maxBatch: maxBatch}
	if s.driver == SQLite {
		c.unsynced = make(chan []*spoolReq, 64)
		c.syncWG.Add(1)
		go c.syncer()
	}
	for range loops {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

// syncer makes committed batches durable on SQLite (syncWAL) and only then
// answers their callers. It runs beside the committing loop: while one
// fsync runs, the loop commits the next batch, and the next fsync covers
// every batch committed before it started. The connection is not held
// during an fsync (commitTx), so filings and claims go on meanwhile.
func (c *Committer) syncer() {
	defer c.syncWG.Done()
	for first := range c.unsynced {
		group := [][]*spoolReq{first}
	more:
		for {
			select {
			case b, ok := <-c.unsynced:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		err := c.s.syncWAL()
		for _, b := range group {
			for _, r := range b {
				if err != nil {
					r.res <- spoolRes{err: err}
				} else {
					r.res <- spoolRes{id: r.id}
				}
			}
		}
	}
}

// maxBatchBytes keeps one transaction from holding an unbounded amount of
// message data in memory and in the WAL.
const maxBatchBytes = 16 << 20

// Spool hands m to the committer and waits for the commit that holds it.
// ctx bounds only the wait to be taken in; once taken, the message is
// committed or fails as a whole, and Spool reports which.
func (c *Committer) Spool(ctx context.Context, m *Message) (int64, error) {
	r := &spoolReq{m: m, res: make(chan spoolRes, 1)}
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		c.closeMu.RUnlock()
		return 0, ctx.Err()
	}
	c.closeMu.RUnlock()
	res := <-r.res
	return res.id, res.err
}

// Close commits what was handed in and stops the committer.
func (c *Committer) Close() {
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.closeMu.Unlock()
	c.wg.Wait()
	if c.unsynced != nil {
		close(c.unsynced)
		c.syncWG.Wait()
	}
}

func (c *Committer) loop() {
	defer c.wg.Done()
	for first := range c.reqs {
		batch := []*spoolReq{first}
		size := len(first.m.Raw)
	drain:
		for len(batch) < c.maxBatch && size < maxBatchBytes {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				size += len(r.m.Raw)
			default:
				break drain
			}
		}
		c.commit(batch)
	}
}

// commit spools a batch in one transaction. If that fails, each message is
// tried alone, so that one message the store refuses cannot turn away the
// others that happened to arrive with it.
func (c *Committer) commit(batch []*spoolReq) {
	ms := make([]*Message, len(batch))
	for i, r := range batch {
		ms[i] = r.m
	}
	// The committer outlives any one caller, so it does not take a caller's
	// context: a commit in flight is finished, not abandoned.
	ctx := context.Background()
	var ids []int64
	var err error
	if c.unsynced != nil {
		ids, err = c.s.spoolBatch(ctx, ms)
		if err == nil {
			for i, r := range batch {
				r.id = ids[i]
			}
			c.unsynced <- batch // answered once the WAL is synced
			return
		}
	} else if ids, err = c.s.SpoolBatch(ctx, ms); err == nil {
		for i, r := range batch {
			r.res <- spoolRes{id: ids[i]}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].res <- spoolRes{err: err}
		return
	}
	for _, r := range batch {
		id, err := c.s.Spool(ctx, r.m)
		r.res <- spoolRes{id: id, err: err}
	}
}
