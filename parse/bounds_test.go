package parse

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIndicatorsBounded: a report naming more addresses than the limit
// lists the limit and counts the rest, with a warning staff see.
func TestIndicatorsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: feed@partner.example\r\nSubject: scanners\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nThe attached CSV lists the scanners.\r\n--B\r\nContent-Type: text/csv; name=scanners.csv\r\nContent-Disposition: attachment; filename=scanners.csv\r\n\r\nip,first_seen\r\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "10.%d.%d.%d,2026-12-01\r\n", i/65536, i/256%256, i%256)
	}
	b.WriteString("--B--\r\n")
	rep, err := Parse([]byte(b.String()), Options{Limits: Limits{MaxIndicators: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.Indicators.IPv4); n != 1000 {
		t.Fatalf("%d IPv4 listed, want the limit of 1000", n)
	}
	warned := false
	for _, w := range rep.Warnings {
		warned = warned || strings.Contains(w, "limit of 1000")
	}
	if n, _ := rep.Extra["indicators_omitted"].(int); !warned || n < 2000 {
		t.Fatalf("warnings %v, omitted %v", rep.Warnings, rep.Extra["indicators_omitted"])
	}
}

// TestForwardedTextBounded: a message of many forwards is stored with a
// bounded text, not its size several times over.
func TestForwardedTextBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: r@reporter.example\r\nSubject: many\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nSee the attached messages.\r\n")
	body := strings.Repeat("spam spam spam http://evil.example/x\r\n", 500) // ~19 KB
	for i := range 50 {
		fmt.Fprintf(&b, "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: f%d@x.example\r\nSubject: fwd %d\r\n\r\n%s", i, i, body)
	}
	b.WriteString("--B--\r\n")
	limit := 64 << 10
	rep, err := Parse([]byte(b.String()), Options{Limits: Limits{MaxTextBytes: limit}})
	if err != nil {
		t.Fatal(err)
	}
	total := len(rep.Text)
	for _, fw := range rep.Forwarded {
		total += len(fw.Text)
	}
	if total > 2*limit+64<<10 || len(rep.Forwarded) != 50 || !strings.HasPrefix(rep.Text, "See the attached") {
		t.Fatalf("text stored: %d bytes over %d forwards (limit %d)", total, len(rep.Forwarded), limit)
	}
}

// TestParseTimeBounded: past MaxParseTime the walk stops with a warning
// and what was read is the report.
func TestParseTimeBounded(t *testing.T) {
	rep, err := Parse(nestMultipart(t, 20, "198.51.100.1\r\n"), Options{Limits: Limits{MaxParseTime: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range rep.Warnings {
		found = found || strings.Contains(w, "parsing stopped after")
	}
	if !found || rep.From != "hider@attacker.example" {
		t.Fatalf("warnings %v, from %q", rep.Warnings, rep.From)
	}
}
