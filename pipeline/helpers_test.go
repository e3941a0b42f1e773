package pipeline

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// spoolAndProcess spools m, claims it and files it with proc, as a
// worker would.
func spoolAndProcess(t *testing.T, proc *Processor, m *store.Message) store.FileResult {
	t.Helper()
	ctx := context.Background()
	id, err := proc.Store.Spool(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proc.Store.Claim(ctx, "t", 1, time.Minute, 3); err != nil {
		t.Fatal(err)
	}
	res, err := proc.Process(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
