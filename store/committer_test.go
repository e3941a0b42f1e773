package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/madoguchi/madoguchi/store"
)

// TestCommitterGroupsAndKeepsEveryMessage: many concurrent callers through one
// committer each get a distinct id whose row holds exactly their bytes, every
// one is queued, and after Close a caller gets ErrClosed instead of hanging.
func TestCommitterGroupsAndKeepsEveryMessage(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		ctx := context.Background()
		gc := store.NewCommitter(s, 16)
		const n = 60
		ids := make([]int64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i], errs[i] = gc.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
			}()
		}
		wg.Wait()
		seen := map[int64]bool{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("message %d: %v", i, errs[i])
			}
			if seen[ids[i]] {
				t.Fatalf("id %d given twice", ids[i])
			}
			seen[ids[i]] = true
			m, err := s.GetMessage(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i); string(m.Raw) != want {
				t.Fatalf("id %d holds %q, want %q", ids[i], m.Raw, want)
			}
		}
		counts, err := s.QueueCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.StateReady] != n {
			t.Fatalf("queue: %v, want %d ready", counts, n)
		}
		gc.Close()
		if _, err := gc.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte("x")}); err != store.ErrClosed {
			t.Fatalf("after Close: %v", err)
		}
	})
}

// TestCommitterReportsStoreFailure: when the store cannot commit, every
// caller gets an error (never a false success), including those whose
// message was batched with others.
func TestCommitterReportsStoreFailure(t *testing.T) {
	eachDriver(t, func(t *testing.T, s store.Store, c *clock) {
		gc := store.NewCommitter(s, 8)
		defer gc.Close()
		if _, err := rawDB(s).Exec(`DROP TABLE queue`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if id, err := gc.Spool(context.Background(), &store.Message{Channel: store.ChannelSMTP, Raw: []byte{byte(i)}}); err == nil {
					t.Errorf("spooled as %d with no queue table", id)
				}
			}()
		}
		wg.Wait()
	})
}
