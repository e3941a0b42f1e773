package rawmime

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzHeaderStrict: when go-message reads a header block, it gives the
// fields the lenient reader gives, in the same order, with the same
// values; the lenient reader may only skip what go-message would refuse.
// Known differences, which the comparison allows for: go-message trims
// spaces before the colon ("Subject : x"), which the lenient reader
// refuses as a malformed line, and a bare CR ends lines differently.
func FuzzHeaderStrict(f *testing.F) {
	for _, s := range []string{
		"From: a@example.net\r\nSubject: =?ISO-2022-JP?B?GyRCJF4kayQ3GyhC?=\r\n\tcontinued\r\nReceived: from x ([192.0.2.1])\r\n by y\r\nReceived: from z\r\n",
		"Subject: a\n  b\n   c\nX-Empty:\nTo: b@example.org\n",
		"From foo@bar Mon Jan 1 12:00:00 2026\nSubject: mbox\n",
		"Subject : spaced\n",
		"no colon here\nSubject: after\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		hb, _ := SplitMessage(raw) // a header block as the parser sees one
		strict, ok := ReadHeaderStrict(hb, 64<<10)
		if !ok || bytes.Count(hb, []byte("\r")) != bytes.Count(hb, []byte("\r\n")) {
			return // a bare CR: the readers end lines differently
		}
		lenient := ReadHeaderLenient(hb, 64<<10, func(string) {})
		if len(strict) != len(lenient) {
			for _, fl := range strict {
				if strings.TrimRight(fl.Name, " \t") != fl.Name || strings.ContainsAny(fl.Name, " \t") {
					return
				}
			}
			if bytes.Contains(hb, []byte(" :")) || bytes.Contains(hb, []byte("\t:")) {
				return
			}
			t.Fatalf("go-message read %d fields, the lenient reader %d:\n%q\n%q", len(strict), len(lenient), strict, lenient)
		}
		for i := range strict {
			if !strings.EqualFold(strict[i].Name, lenient[i].Name) {
				t.Fatalf("field %d: name %q, lenient %q", i, strict[i].Name, lenient[i].Name)
			}
			if strict[i].Value != lenient[i].Value {
				t.Fatalf("field %d (%s): value %q, lenient %q", i, strict[i].Name, strict[i].Value, lenient[i].Value)
			}
		}
	})
}
