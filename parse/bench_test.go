package parse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Benchmarks of parsing, with figures in docs/benchmarks.md:
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./parse

// typicalReport is a 20 KiB plain-text phishing report: a reporter's note
// and a forwarded phishing mail, prose lines of varied words with an
// indicator (URL, address, IP, hash) every dozen lines or so, which is what
// reports to a CSIRT's mailbox look like. The lines are generated from a
// fixed seed so that no two are alike (a parser may not gain by repeats).
var typicalReport = func() []byte {
	words := strings.Fields("account bank customer please verify login password suspended security team " +
		"message link page site notice update payment card transaction within hours access confirm " +
		"the a to of and we you your our this that with for from have has been is are was")
	indicators := []string{"hxxps://secure-login[.]bank-example[.]com/verify?id=%d", "203.0.113.%d",
		"support%d@bank-example.com", "d41d8cd98f00b204e9800998ecf8%04x", "http://198.51.100.%d/kit.zip", "CVE-2026-%05d"}
	var b strings.Builder
	b.WriteString("From: Reporter <reporter@example.net>\r\nTo: csirt@example.org\r\n" +
		"Subject: Phishing site impersonating our bank\r\nMessage-ID: <typical@example.net>\r\n" +
		"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Hello,\r\n\r\nwe received the phishing mail below. Please take it down.\r\n\r\n" +
		"---------- Forwarded message ---------\r\nFrom: Bank <no-reply@bank-example.com>\r\n" +
		"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nSubject: Verify your account\r\n\r\n")
	seed := uint32(2026)
	next := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>8) % n }
	for line := 0; b.Len() < 20<<10; line++ {
		for w := 0; w < 12; w++ {
			b.WriteString(words[next(len(words))])
			b.WriteByte(' ')
		}
		if line%12 == 5 {
			b.WriteString(fmt.Sprintf(indicators[next(len(indicators))], 1+next(250)))
		}
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}()

func BenchmarkParseTypical(b *testing.B) { benchParseOne(b, typicalReport) }

// benchParseOne parses msg over and over with the team's options.
func benchParseOne(b *testing.B, msg []byte) {
	opt := Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org"}}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(msg, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkParseCorpusMix parses every corpus message under 1 MiB in turn
// (encrypted ones as the MIME they are: crypto has its own benchmark).
func BenchmarkParseCorpusMix(b *testing.B) {
	files, _ := filepath.Glob("../testdata/corpus/messages/*.eml")
	var msgs [][]byte
	var total int64
	for _, p := range files {
		if raw, err := os.ReadFile(p); err == nil && len(raw) < 1<<20 {
			msgs = append(msgs, raw)
			total += int64(len(raw))
		}
	}
	if len(msgs) == 0 {
		b.Skip("no corpus")
	}
	opt := Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org"}}
	b.SetBytes(total / int64(len(msgs)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = Parse(msgs[i%len(msgs)], opt)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// loadToolReport is what cmd/madoguchi-bench sends with -size 20480: a
// phishing note and ~260 log lines, each with an IPv4 address, so the
// daemon benchmarks' parse stage can be looked at alone.
var loadToolReport = func() []byte {
	var b strings.Builder
	b.WriteString("From: Reporter <reporter@reporter.example>\r\nTo: csirt@example.org\r\nSubject: Phishing site impersonating our bank\r\n" +
		"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Hello, the phishing page hxxps://login-bank-example[.]com/verify is live, hosted at 203.0.113.50.\r\n\r\n")
	for i := 0; b.Len() < 20480; i++ {
		fmt.Fprintf(&b, "Line %d of the logs: GET /verify?session=%08x from 198.51.100.%d, status 200.\r\n", i, i*2654435761, i%16+1)
	}
	return []byte(b.String())
}()

func BenchmarkParseLoadToolMessage(b *testing.B) { benchParseOne(b, loadToolReport) }
