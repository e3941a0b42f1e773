package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestWithMessageID(t *testing.T) {
	for _, raw := range []string{
		"From: a@b\r\nMessage-ID: <old@x>\r\nSubject: s\r\n\r\nbody Message-ID: <keep@x>\r\n",
		"From: a@b\nMessage-Id: <old@x>\nSubject: s\n\nbody\n",
		"From: a@b\r\nSubject: none\r\n\r\nbody\r\n",
	} {
		out := string(withMessageID([]byte(raw), "<new@bench>"))
		hdr, body, _ := strings.Cut(strings.ReplaceAll(out, "\r\n", "\n"), "\n\n")
		if strings.Count(strings.ToLower(hdr), "message-id:") != 1 || !strings.Contains(hdr, "<new@bench>") || strings.Contains(hdr, "old@x") {
			t.Fatalf("header: %q", hdr)
		}
		if !strings.HasPrefix(strings.ReplaceAll(raw, "\r\n", "\n")[strings.Index(strings.ReplaceAll(raw, "\r\n", "\n"), "\n\n")+2:], body) {
			t.Fatalf("body changed: %q", body)
		}
	}
}

func TestQuantileDelta(t *testing.T) {
	base := metrics{`h_bucket{le="0.1"}`: 5, `h_bucket{le="0.2"}`: 5, `h_bucket{le="+Inf"}`: 5}
	m := metrics{`h_bucket{le="0.1"}`: 55, `h_bucket{le="0.2"}`: 105, `h_bucket{le="+Inf"}`: 105}
	if got := m.quantileDelta(base, "h", "", 0.5); math.Abs(got-0.1) > 1e-9 {
		t.Fatalf("p50 %v", got)
	}
	if got := m.quantileDelta(base, "h", "", 0.75); math.Abs(got-0.15) > 1e-9 {
		t.Fatalf("p75 %v", got)
	}
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if pct(lat, 0.5) != 5 || pct(lat, 0.99) != 10 {
		t.Fatal("pct")
	}
}
