package pipeline

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

// While every parse slot is taken, no worker parses (so none files), however
// many workers run; once a slot is free, the work goes on. In a synctest
// bubble: synctest.Wait returns once every worker is blocked (on the slot,
// or idle), so "nothing filed" is checked when nothing more can happen.
func TestParseSlotsBoundParsing(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := stores.Open(ctx, stores.SQLite, filepath.Join(dir, "m.db"), store.Options{TicketPrefix: "CSIRT"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		slots := ParseSlotsFor(1)
		proc := &Processor{Store: s, ParseSlots: slots, MaxAttempts: 3, Lease: time.Minute, Log: quietLogger(), NoAck: true}
		slots <- struct{}{} // the only slot, held by the test
		for i := range 3 {
			raw := []byte("From: a@example.net\r\nTo: csirt@example.org\r\nSubject: phishing " + string(rune('a'+i)) +
				"\r\nMessage-ID: <slot" + string(rune('a'+i)) + "@example.net>\r\n\r\nhttp://bad.example.com/login\r\n")
			if _, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: raw}); err != nil {
				t.Fatal(err)
			}
		}
		wake := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() { proc.Run(ctx, "t", 4, wake); close(done) }()
		filed := func() int {
			incs, err := s.ListIncidents(ctx, store.Filter{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return len(incs)
		}
		synctest.Wait()
		if n := filed(); n != 0 {
			t.Fatalf("%d incidents filed while the only parse slot was held", n)
		}
		<-slots
		for range 100 {
			if filed() == 3 {
				break
			}
			time.Sleep(time.Second) // the bubble's clock: the workers' next poll
			synctest.Wait()
		}
		if n := filed(); n != 3 {
			t.Fatalf("%d incidents filed after the slot was freed, want 3", n)
		}
		cancel()
		<-done
	})
}

func TestParseSlotsForDefault(t *testing.T) {
	want := max(1, runtime.GOMAXPROCS(0)-1)
	if got := cap(ParseSlotsFor(0)); got != want {
		t.Fatalf("automatic parse slots %d, want %d", got, want)
	}
	if got := cap(ParseSlotsFor(3)); got != 3 {
		t.Fatalf("parse slots %d, want 3", got)
	}
}
