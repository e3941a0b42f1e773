package store

import "sync"

// writeGate orders the transactions of SQLite's one connection so that a
// spool commit (the acceptance point: an SMTP client is waiting for its
// 250) goes before every claim, filing or lease that is waiting too. Without
// it the connection is handed out in arrival order, and with a few workers
// filing, each 250 waited behind several filing transactions; the work
// behind the 250 waits instead, which is what the queue is for. A spool
// never waits for more than the one transaction in progress.
//
// PostgreSQL needs no gate: its transactions run side by side.
type writeGate struct {
	mu          sync.Mutex
	cond        *sync.Cond
	busy        bool
	highWaiting int
}

func newWriteGate() *writeGate {
	g := &writeGate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// enter waits for the connection; high is the spool's priority.
func (g *writeGate) enter(high bool) {
	g.mu.Lock()
	if high {
		g.highWaiting++
	}
	for g.busy || (!high && g.highWaiting > 0) {
		g.cond.Wait()
	}
	if high {
		g.highWaiting--
	}
	g.busy = true
	g.mu.Unlock()
}

func (g *writeGate) leave() {
	g.mu.Lock()
	g.busy = false
	g.mu.Unlock()
	g.cond.Broadcast()
}
