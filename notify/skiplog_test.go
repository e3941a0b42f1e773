package notify

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRateLimitSkipsAreLoggedSparingly: a sender flooding the gateway has
// every acknowledgement beyond the limit skipped; the log names the
// recipient at once, then at most once a minute with how many were skipped
// since, and each recipient on its own.
func TestRateLimitSkipsAreLoggedSparingly(t *testing.T) {
	var buf bytes.Buffer
	w := &Writer{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	lines := func() []string {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	w.noteSkip(t0, "flood@example.net", "rate limit")
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "recipient=flood@example.net skipped=1 why=\"rate limit\"") {
		t.Fatalf("first skip: %q", l)
	}
	for i := 1; i <= 500; i++ {
		w.noteSkip(t0.Add(time.Duration(i)*100*time.Millisecond), "flood@example.net", "rate limit")
	}
	if l := lines(); len(l) != 0 {
		t.Fatalf("500 more within a minute logged %d lines: %q", len(l), l[0])
	}
	w.noteSkip(t0.Add(30*time.Second), "other@example.org", "rate limit")
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "recipient=other@example.org skipped=1") {
		t.Fatalf("another recipient: %q", l)
	}
	w.noteSkip(t0.Add(61*time.Second), "flood@example.net", "rate limit")
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "recipient=flood@example.net skipped=501") {
		t.Fatalf("a minute on: %q", l)
	}
}
