package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

// Benchmarks of the durable ceiling: spool commits/s and queue claims/s on
// both drivers, with one and eight concurrent writers. Figures and the
// machine they were taken on are in docs/benchmarks.md. PostgreSQL runs
// under the same rule as the conformance suite (MADOGUCHI_TEST_POSTGRES).
//
//	go test -run '^$' -bench . -benchtime 2000x ./store

// benchMessage is a typical 20 KiB report.
var benchMessage = []byte("From: reporter@example.net\r\nTo: csirt@example.org\r\nSubject: phishing\r\nMessage-ID: <bench@example.net>\r\n\r\n" +
	strings.Repeat("A phishing page at hxxp://login-example[.]com/ is collecting passwords.\r\n", 280))

// runWriters shares b.N operations among w goroutines and reports the rate.
func runWriters(b *testing.B, w int, op func(ctx context.Context) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchStore(b *testing.B, drv string) store.Store {
	b.Helper()
	return openTest(b, drv, &clock{t: time.Now()})
}

func BenchmarkSpool(b *testing.B) {
	for _, drv := range []string{stores.SQLite, stores.Postgres} {
		for _, w := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d/each-commits", drv, w), func(b *testing.B) {
				s := benchStore(b, drv)
				b.SetBytes(int64(len(benchMessage)))
				runWriters(b, w, func(ctx context.Context) error {
					_, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: benchMessage})
					return err
				})
			})
			b.Run(fmt.Sprintf("%s/writers=%d/group-commit", drv, w), func(b *testing.B) {
				s := benchStore(b, drv)
				gc := store.NewCommitter(s, 64)
				defer gc.Close()
				b.SetBytes(int64(len(benchMessage)))
				runWriters(b, w, func(ctx context.Context) error {
					_, err := gc.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: benchMessage})
					return err
				})
			})
		}
	}
}

func BenchmarkClaim(b *testing.B) {
	for _, drv := range []string{stores.SQLite, stores.Postgres} {
		for _, w := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/workers=%d", drv, w), func(b *testing.B) {
				s := benchStore(b, drv)
				ctx := context.Background()
				small := []byte("Subject: x\r\n\r\nx\r\n")
				for i := 0; i < b.N; i += 500 {
					batch := make([]*store.Message, 0, 500)
					for j := i; j < b.N && j < i+500; j++ {
						batch = append(batch, &store.Message{Channel: store.ChannelSMTP, Raw: small})
					}
					if _, err := s.SpoolBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				var got atomic.Int64
				runWriters(b, w, func(ctx context.Context) error {
					cs, err := s.Claim(ctx, "bench", 1, time.Minute, 5)
					got.Add(int64(len(cs)))
					return err
				})
				if got.Load() != int64(b.N) {
					b.Fatalf("claimed %d of %d", got.Load(), b.N)
				}
			})
		}
	}
}

// BenchmarkFsync is the disk's fsync latency (4 KiB write + fsync), the
// figure every durable-commit number above should be read beside.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFile files one report with 250 indicators (a log excerpt) per
// op, as a new incident: the store's share of the pipeline.
func BenchmarkFile(b *testing.B) {
	for _, drv := range []string{stores.SQLite, stores.Postgres} {
		b.Run(drv, func(b *testing.B) {
			s := benchStore(b, drv)
			ctx := context.Background()
			inds := make([]store.Indicator, benchInds)
			for i := range inds {
				inds[i] = store.Indicator{Kind: "ipv4", Value: fmt.Sprintf("198.51.100.%d", i)}
			}
			ids := make([]int64, b.N)
			for i := range ids {
				id, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx", i))})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			var next atomic.Int64
			runWriters(b, 1, func(ctx context.Context) error {
				i := next.Add(1) - 1
				_, err := s.File(ctx, &store.Filing{SpoolID: ids[i], MessageID: fmt.Sprintf("<b%d@x>", i), Sender: "a@x.example", Subject: "s",
					ReportJSON: benchMessage[:4096], Indicators: inds, Ack: &store.AckRequest{Recipient: "a@x.example", Domain: "csirt.example.org"}})
				return err
			})
		})
	}
}

var benchInds = 20 // a typical report's indicators
