package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

// TestQueueCollectorReadsTheStoreAtMostOncePerMaxAge: scrapes within
// countsMaxAge are answered from the last read; after it, from the store.
func TestQueueCollectorReadsTheStoreAtMostOncePerMaxAge(t *testing.T) {
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &queueCollector{s: s}
	q, _ := c.counts()
	if q[store.StateReady] != 0 {
		t.Fatalf("ready %d in an empty store", q[store.StateReady])
	}
	if _, err := s.Spool(ctx, &store.Message{Channel: store.ChannelImport, Raw: []byte("Subject: x\r\n\r\ny")}); err != nil {
		t.Fatal(err)
	}
	if q, _ = c.counts(); q[store.StateReady] != 0 {
		t.Errorf("a scrape right after the last read went to the store (ready %d)", q[store.StateReady])
	}
	c.mu.Lock()
	c.at = c.at.Add(-countsMaxAge - time.Second)
	c.mu.Unlock()
	if q, _ = c.counts(); q[store.StateReady] != 1 {
		t.Errorf("ready %d after countsMaxAge, want 1", q[store.StateReady])
	}
}
