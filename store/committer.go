package store

import (
	"context"
	"sync"
)

// Committer spools messages with group commit: a loop takes every message
// that arrived while the previous commit was running and commits them
// together in one transaction, so one flush to disk covers many arrivals.
// Each caller's Spool returns only after the commit that holds its message,
// so "nil means durable" holds exactly as for Store.Spool.
//
// There is no timer: a lone message is committed at once (no added latency
// at low load), and batches form by themselves under load, as long as the
// previous commit took. The store says how many loops share the arrivals
// (Writers): one where the database has a single writer (SQLite); several
// where the server flushes concurrent commits together itself
// (PostgreSQL), so that a single loop does not serialise what it overlaps.
type Committer struct {
	s        Store
	reqs     chan *spoolReq
	maxBatch int
	wg       sync.WaitGroup
	closeMu  sync.RWMutex
	closed   bool
}

type spoolReq struct {
	m   *Message
	res chan spoolRes
}

type spoolRes struct {
	id  int64
	err error
}

// maxBatchBytes bounds the raw bytes of one group commit.
const maxBatchBytes = 16 << 20

// NewCommitter starts a group committer of at most maxBatch messages (or
// 16 MiB, whichever comes first) per transaction.
func NewCommitter(s Store, maxBatch int) *Committer {
	if maxBatch < 1 {
		maxBatch = 64
	}
	c := &Committer{s: s, reqs: make(chan *spoolReq, maxBatch*4), maxBatch: maxBatch}
	for range max(s.Writers(), 1) {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

// Spool commits m with whatever else is waiting; nil means durable.
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

// Close commits what was handed in and stops the loops; a Spool after it
// returns ErrClosed.
func (c *Committer) Close() {
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.closeMu.Unlock()
	c.wg.Wait()
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

// commit spools a batch in one transaction; should that fail, each message
// is tried alone, so that one bad message does not refuse the others.
func (c *Committer) commit(batch []*spoolReq) {
	ms := make([]*Message, len(batch))
	for i, r := range batch {
		ms[i] = r.m
	}
	ctx := context.Background()
	ids, err := c.s.SpoolBatch(ctx, ms)
	if err == nil {
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
