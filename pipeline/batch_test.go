package pipeline

import (
	"testing"

	"github.com/madoguchi/madoguchi/store"
)

// TestBatchBoundedByBytes: a batch keeps its first message whatever its
// size, then others while they fit in batchBytes.
func TestBatchBoundedByBytes(t *testing.T) {
	m := func(size int64) *store.Message { return &store.Message{Size: size} }
	for _, c := range []struct {
		msgs []*store.Message
		want int
	}{
		{[]*store.Message{m(100), m(100), m(100)}, 3},
		{[]*store.Message{m(20 << 20), m(100), m(100)}, 1},
		{[]*store.Message{m(100), m(20 << 20), m(100)}, 1},
		{[]*store.Message{m(2 << 20), m(1 << 20), m(2 << 20)}, 2},
		{[]*store.Message{nil, m(100)}, 2},
	} {
		if got := withinBytes(c.msgs); got != c.want {
			t.Errorf("withinBytes: %d, want %d", got, c.want)
		}
	}
}
