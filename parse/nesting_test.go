package parse

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

// nestMultipart wraps a text part in n multipart/mixed layers with Go's
// multipart writer.
func nestMultipart(t *testing.T, n int, text string) []byte {
	t.Helper()
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\n" + text)
	for range n {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		hdr, body, _ := bytes.Cut(entity, []byte("\r\n\r\n"))
		mh := textproto.MIMEHeader{}
		for _, l := range strings.Split(string(hdr), "\r\n") {
			k, v, _ := strings.Cut(l, ": ")
			mh.Add(k, v)
		}
		pw, err := w.CreatePart(mh)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(body)
		_ = w.Close()
		entity = append([]byte("Content-Type: multipart/mixed; boundary="+w.Boundary()+"\r\n\r\n"), b.Bytes()...)
	}
	return append([]byte("From: hider@attacker.example\r\nTo: csirt@example.org\r\nSubject: nothing here\r\nMessage-ID: <deep@attacker.example>\r\nMIME-Version: 1.0\r\n"), entity...)
}

// TestDeepNestingHidesNothing: a report wrapped in 150 multiparts (past
// the old depth limit of 128) or in 200 forwarded messages is read to its
// leaf: its text, indicators and classification reach the report.
func TestDeepNestingHidesNothing(t *testing.T) {
	secret := "Phishing site at http://198.51.100.77/login hosted on 198.51.100.77, CVE-2026-12345.\r\n"
	raw := nestMultipart(t, 150, secret)
	rep, err := Parse(raw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Text, "198.51.100.77") || !slices.Contains(rep.Indicators.IPv4, "198.51.100.77") || !slices.Contains(rep.Indicators.CVEs, "CVE-2026-12345") {
		t.Fatalf("150 multiparts deep: text %q, indicators %+v, warnings %v", rep.Text, rep.Indicators, rep.Warnings)
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "ignored") {
			t.Errorf("warning: %s", w)
		}
	}

	msg := "From: a@x.example\r\nSubject: inner\r\n\r\n" + secret
	for i := range 200 {
		msg = fmt.Sprintf("From: f%d@x.example\r\nSubject: fwd %d\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n%s", i, i, msg)
	}
	rep, err = Parse([]byte(msg), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	var walk func(r *Report)
	walk = func(r *Report) {
		all = append(all, r.Indicators.IPv4...)
		for _, f := range r.Forwarded {
			walk(f)
		}
	}
	walk(rep)
	if !slices.Contains(all, "198.51.100.77") {
		t.Fatalf("200 forwards deep: the innermost text was not read (warnings %v)", rep.Warnings[:min(3, len(rep.Warnings))])
	}
}

// TestNestingWorkIsBounded: nesting a large body many times costs at
// most the walk budget; the parse stops with a warning, not after reading
// the body once per level.
func TestNestingWorkIsBounded(t *testing.T) {
	raw := nestMultipart(t, 400, strings.Repeat("x", 512<<10)+"\r\n")
	rep, err := Parse(raw, Options{Limits: Limits{MaxWalkBytes: 1}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range rep.Warnings {
		found = found || strings.Contains(w, "multipart nesting read more than")
	}
	if !found {
		t.Fatalf("no walk-budget warning: %v", rep.Warnings)
	}
}
