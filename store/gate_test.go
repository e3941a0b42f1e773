package store

import (
	"sync"
	"testing"
	"time"
)

// A spool commit waiting for SQLite's connection goes before the claims and
// filings that were waiting longer; a low-priority waiter still gets its
// turn once no spool waits.
func TestWriteGateSpoolFirst(t *testing.T) {
	g := newWriteGate()
	g.enter(false) // a filing in progress
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enter := func(name string, high bool) {
		defer wg.Done()
		g.enter(high)
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		g.leave()
	}
	wg.Add(3)
	go enter("claim", false)
	go enter("filing", false)
	time.Sleep(30 * time.Millisecond) // both low ones are waiting
	go enter("spool", true)
	// Leave only once the spool is known to wait, so the order does not
	// hang on how fast goroutines are scheduled.
	for waiting := 0; waiting == 0; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		waiting = g.highWaiting
		g.mu.Unlock()
	}
	g.leave()
	wg.Wait()
	if len(order) != 3 || order[0] != "spool" {
		t.Fatalf("order %v, want the spool first", order)
	}
}
