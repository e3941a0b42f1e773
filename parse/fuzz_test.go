package parse

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

func corpusSeeds(f *testing.F) {
	files, _ := filepath.Glob("../testdata/corpus/messages/*.eml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
}

var fuzzOpts = Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org"},
	Limits: Limits{MaxParts: 200, MaxDecodedBytes: 4 << 20}}

// FuzzParse: any bytes give a report or an error, never a panic.
func FuzzParse(f *testing.F) {
	corpusSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := Parse(raw, fuzzOpts)
		if rep == nil {
			t.Fatalf("nil report (err %v)", err)
		}
		if err != nil && err != ErrEmpty {
			t.Fatalf("internal error: %v", err)
		}
	})
}

// FuzzDecodeHeader: the charset decoder and RFC 2047 never panic and
// always return valid UTF-8.
func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{"=?ISO-2022-JP?B?GyRCJF4kayQ3GyhC?=", "=?Shift_JIS?B?gXmV8o2QgXo=?= =?utf-8?q?x_y?=", "Verd\xe4chtige", "=?x?q?=ZZ?="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := decodeHeader(s)
		if !strings.ContainsRune(out, 0xFFFD) && !validUTF8(out) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		text, _, _ := decodeCharset([]byte(s), "iso-2022-jp")
		_ = text
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }

// FuzzIndicators: the extractor and forward detector never panic and
// every reported value is re-fanged and lower-case where it should be.
func FuzzIndicators(f *testing.F) {
	for _, s := range []string{"hxxp://evil[.]example/x 198.51.100[.]1 a[@]b[.]example CVE-2024-3400", "-----Original Message-----\nFrom: a@b.example\nSubject: x\n\nhttp://x.example", "2001:db8::1 ::: 1.2.3.4/24"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := newCollector(&fuzzOpts)
		c.scan(s)
		for _, u := range c.ind.URLs {
			if strings.HasPrefix(u, "hxxp") {
				t.Fatalf("not re-fanged: %q", u)
			}
		}
		for _, d := range c.ind.Domains {
			if d != strings.ToLower(d) || d == "example.org" {
				t.Fatalf("domain %q", d)
			}
		}
		p := &parser{opt: fuzzOpts}
		p.opt.Limits = p.opt.Limits.withDefaults()
		_ = p.inlineForwards(s)
		_ = p.stripOwn(s)
	})
}

// Hostile shapes must finish quickly with a report.
func TestHostileInputsBounded(t *testing.T) {
	var nested strings.Builder
	nested.WriteString("Content-Type: multipart/mixed; boundary=b0\n\n")
	for i := 0; i < 1000; i++ {
		nested.WriteString("--b" + itoa(i) + "\nContent-Type: multipart/mixed; boundary=b" + itoa(i+1) + "\n\n")
	}
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=x\n\n")
	for i := 0; i < 10000; i++ {
		many.WriteString("--x\nContent-Type: text/plain\n\npart " + itoa(i) + "\n")
	}
	cases := map[string]string{
		"1000-level nesting":  nested.String(),
		"10000 parts":         many.String(),
		"1 MB header":         "Subject: " + strings.Repeat("A", 1<<20) + "\n\nbody",
		"10 MB base64 line":   "Content-Transfer-Encoding: base64\n\n" + strings.Repeat("QUFB", 10<<18),
		"invalid UTF-8":       "Subject: \xff\xfe\n\n\xff\xfe\xfd http://\xff.example/",
		"10000-char subject":  "Subject: " + strings.Repeat("件", 10000) + "\n\nx",
		"no header separator": "garbage without any structure",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			rep, err := Parse([]byte(raw), Options{})
			if rep == nil || (err != nil && err != ErrEmpty) {
				t.Fatalf("report %v err %v", rep, err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzForwards: the inline forward detector alone, seeded with the forward
// markers of the mailers it knows; whatever it returns is valid UTF-8 text
// with at most the Received fields it bounds itself to.
func FuzzForwards(f *testing.F) {
	for _, s := range []string{
		"-----Original Message-----\nFrom: a@b.example [mailto:a@b.example]\nSent: Monday\nSubject: x\n\nbody",
		"---------- Forwarded message ---------\nFrom: A <a@b.example>\nDate: x\nSubject: y\n\nbody",
		"Begin forwarded message:\n\nFrom: a@b.example\nSubject: z\n\n",
		"-------- 転送メッセージ --------\n件名: 至急\n差出人: a@b.example\n\n本文",
		"-------- Forwarded Message --------\nReceived: from x ([203.0.113.1])\n\tby y\nFrom: a@b.example\n\nz",
	} {
		f.Add(s)
	}
	p := &parser{opt: fuzzOpts}
	p.opt.Limits = p.opt.Limits.withDefaults()
	f.Fuzz(func(t *testing.T, s string) {
		for _, fw := range p.inlineForwards(s) {
			if len(fw.ReceivedChain) > maxForwardReceived {
				t.Fatalf("%d Received fields kept", len(fw.ReceivedChain))
			}
			if fw.OriginatingIP != "" && !strings.Contains(strings.Join(fw.ReceivedChain, " "), fw.OriginatingIP) {
				t.Fatalf("originating IP %q is not in the chain", fw.OriginatingIP)
			}
		}
	})
}

// FuzzStructured: the ARF, X-ARF, IODEF and CSV readers never panic, and
// every source IP they report parses as an address.
func FuzzStructured(f *testing.F) {
	for _, s := range []string{
		"Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nSource-IP: 192.0.2.1\nArrival-Date: Mon, 30 Nov 2026 10:00:00 +0000\n",
		"---\nReported-From: a@b.example\nCategory: abuse\nReport-Type: login-attack\nSource: 198.51.100.9\nSource-Type: ipv4\nDate: 2026-11-30T10:00:00Z\n",
		`<?xml version="1.0"?><IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0"><Incident purpose="reporting"><IncidentID name="x">1</IncidentID><EventData><Flow><System category="source"><Node><Address category="ipv4-addr">192.0.2.7</Address></Node></System></Flow></EventData></Incident></IODEF-Document>`,
		"timestamp,ip,asn,geo\n2026-11-30 10:00:00,192.0.2.8,64500,JP\n",
		`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><IODEF-Document>&e;</IODEF-Document>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range []*Structured{parseARF(s), parseXARF(s), parseIODEF([]byte(s)), parseCSVFeed(s)} {
			if st == nil {
				continue
			}
			for k, v := range st.Fields {
				if strings.Contains(v, "root:x:0:0") {
					t.Fatalf("an external entity was resolved into %s", k)
				}
			}
			for _, ip := range st.SourceIPs {
				if _, err := netip.ParseAddr(ip); err != nil {
					if _, err := netip.ParsePrefix(ip); err != nil {
						t.Fatalf("%s source IP %q is not an address", st.Format, ip)
					}
				}
			}
		}
	})
}

// FuzzMIMEWalk: the header reader, media-type parser and transfer decoders
// on arbitrary bytes, within the limit they are given.
func FuzzMIMEWalk(f *testing.F) {
	corpusSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		hdr, body := rawmime.SplitMessage(raw)
		h := rawmime.ReadHeaderLenient(hdr, 64<<10, func(string) {})
		rawmime.MediaType(h.Get("Content-Type"), "text/plain")
		out, _ := rawmime.DecodeTransfer(body, h.Get("Content-Transfer-Encoding"), 1<<20)
		if len(out) > 1<<20 {
			t.Fatalf("decoded %d bytes past a 1 MiB limit", len(out))
		}
		// The multipart walk (go-message, else the lenient reader) keeps
		// to the part limit and gives parts that are bytes of the body.
		if ct, params := rawmime.MediaType(h.Get("Content-Type"), "text/plain"); strings.HasPrefix(ct, "multipart/") && params["boundary"] != "" {
			p := &parser{opt: fuzzOpts}
			p.opt.Limits = p.opt.Limits.withDefaults()
			parts, _ := p.multipartParts(body, params["boundary"], func(string) {})
			if len(parts) > p.opt.Limits.MaxParts {
				t.Fatalf("%d parts past the limit of %d", len(parts), p.opt.Limits.MaxParts)
			}
			for _, part := range parts {
				if !bytes.Contains(body, part.body) {
					t.Fatalf("part body %q is not in the message body", part.body)
				}
			}
		}
	})
}

// findInRuns and findIPv4 must find exactly what the regular expressions
// find over the whole line: they are only faster ways to run them.
func FuzzFindInRuns(f *testing.F) {
	for _, s := range []string{
		"see evil.example.com and 192.0.2.1/24 now", "foo_bar.com x.y", "a.b.c.d 1.2.3.4.5 10.0.0.1.",
		"paypa\u017f.com \u212aey.example", "-a.example.-b.example", "v1.2.3.4 x1.2.3.4 1.2.3.4x",
		"1234.5.6.7.8 01.02.003.0004/333 9.9.9.9/1x 1.2.3.4/ _1.2.3.4 é1.2.3.4", "10.0.0.0/8, 192.168.1.1/24.",
		"日本語.example.jp の 203.0.113.5", "...a..b.c", "http://x.example/a.b/c.d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		for _, c := range []struct {
			re   *regexp.Regexp
			find func(string) [][]int
		}{
			{domainRE, func(s string) [][]int { return findInRuns(s, domainRE, &domainRunBytes, hasDomainShape) }},
			{ipv4RE, findIPv4},
		} {
			want := c.re.FindAllStringIndex(s, -1)
			got := c.find(s)
			if len(want) != len(got) {
				t.Fatalf("%s on %q: %v, want %v", c.re, s, got, want)
			}
			for i := range want {
				if want[i][0] != got[i][0] || want[i][1] != got[i][1] {
					t.Fatalf("%s on %q: %v, want %v", c.re, s, got, want)
				}
			}
		}
	})
}

// containsFoldASCII must agree with lower-casing and searching.
func FuzzContainsFoldASCII(f *testing.F) {
	for _, c := range [][2]string{{"TLP:AMBER here", "tlp"}, {"hXXp://x", "hxxp"}, {"see Cve-2024-1", "cve-"}, {"tl", "tlp"},
		{"ttttlp", "tlp"}, {"TLPtlp", "tlp:"}, {"a key id here", "key id"}, {"", "x"}, {"Fingerprint", "fingerprint"}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, s, needle string) {
		lower := strings.ToLower(needle)
		for i := 0; i < len(lower); i++ {
			if lower[i] >= 0x80 || lower[i] >= 'A' && lower[i] <= 'Z' {
				return // the function takes an ASCII lower-case needle
			}
		}
		want := strings.Contains(asciiLower(s), lower)
		if got := containsFoldASCII(s, lower); got != want {
			t.Fatalf("containsFoldASCII(%q, %q) = %v, want %v", s, lower, got, want)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerASCII(c)
	}
	return string(b)
}

// hasHexRun skips ahead; it must agree with counting every byte.
func FuzzHasHexRun(f *testing.F) {
	for _, s := range []string{"deadbeef", "d41d8cd98f00b204e9800998ecf8427e", "x d41d8cd98f00b204e9800998ecf8427", "abcdefabcdefabcdefabcdefabcdefab!", "cafe babe face"} {
		f.Add(s, uint8(32))
		f.Add(s, uint8(4))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		want, run := n == 0, 0
		for i := 0; i < len(s) && !want; i++ {
			c := s[i]
			if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
				run++
				want = run >= int(n)
			} else {
				run = 0
			}
		}
		if got := hasHexRun(s, int(n)); got != want {
			t.Fatalf("hasHexRun(%q, %d) = %v, want %v", s, n, got, want)
		}
	})
}

// hitsASCII folds as it compares; it must find what hits finds in the
// lower-cased text.
func FuzzKeywordHitsASCII(f *testing.F) {
	for _, s := range []string{"PHISHING page, Phishing KIT", "Malware C2; DDoS attack on DoS windows", "leaked LEAK Leaks",
		"ransomware encrypted files", "defaced website", "CVE-2024-1234 vulnerability", "spam SPAM"} {
		f.Add(s)
	}
	ix := &defaultRules.idx
	f.Fuzz(func(t *testing.T, s string) {
		if !isASCIIString(s) {
			return
		}
		want := make([]bool, len(ix.all))
		got := make([]bool, len(ix.all))
		ix.hits(strings.ToLower(s), want)
		ix.hitsASCII(s, got)
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("keyword %q in %q: hitsASCII %v, hits %v", ix.all[i].lower, s, got[i], want[i])
			}
		}
	})
}

// Refang's fast path must never skip text the replacer would change, and
// languageOf must see what detectLanguage sees of subject and text.
func FuzzRefangAndLanguage(f *testing.F) {
	for _, s := range []string{"hxxp://evil[.]example", "HXXPS://x(.)y", "fxp://a", "nothing here", "a[@]b", "x{.}y", "XP"} {
		f.Add(s, "Subject")
	}
	f.Fuzz(func(t *testing.T, s, subject string) {
		if got, want := Refang(s), refanger.Replace(s); got != want {
			t.Fatalf("Refang(%q) = %q, want %q", s, got, want)
		}
		if got, want := languageOf(subject, s), detectLanguage(subject+"\n"+s); got != want {
			t.Fatalf("languageOf(%q, %q) = %q, want %q", subject, s, got, want)
		}
	})
}

// findURLs must find exactly what urlRE finds.
func FuzzFindURLs(f *testing.F) {
	for _, s := range []string{"see http://evil.example/x and HTTPS://a.b/c?d=e", "xhttp://no ftp://yes.example/", "http:// nothing",
		"https://a\u3000b", "httpſ://long.s/", "(https://x.example/a)", "http://a\"b https://c<d>", "ftp://\xff\xfe", "http://x.example:8080/p|q",
		"http://a://b http://", "日本http://x.jp/パス", "_http://a https://b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := urlRE.FindAllString(s, -1)
		got := findURLs(s)
		if len(want) != len(got) {
			t.Fatalf("findURLs(%q) = %q, want %q", s, got, want)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("findURLs(%q) = %q, want %q", s, got, want)
			}
		}
	})
}

// forwardMarkersLineByLine is forwardMarkers as it was, line by line: the
// reference the faster search is held to.
func forwardMarkersLineByLine(text string, n int) [][]int {
	var locs [][]int
	for off := 0; off < len(text) && len(locs) < n; {
		end := strings.IndexByte(text[off:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += off
		}
		line := text[off:end]
		if strings.Contains(line, "--") || strings.Contains(line, "Begin forwarded") {
			if m := forwardMarkerRE.FindStringIndex(line); m != nil && m[0] == 0 {
				locs = append(locs, []int{off + m[0], off + m[1]})
			}
		}
		off = end + 1
	}
	return locs
}

func FuzzForwardMarkers(f *testing.F) {
	for _, s := range []string{"a\n-----Original Message-----\nx", "Begin forwarded message:\n--\n-- Forwarded message --\n",
		"x -- y\nBegin forwarded message:", "----- 転送 -----\n\n---------- Forwarded message ---------", "--\n--\n--"} {
		f.Add(s, uint8(20))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		want, got := forwardMarkersLineByLine(s, int(n)), forwardMarkers(s, int(n))
		if len(want) != len(got) {
			t.Fatalf("forwardMarkers(%q, %d) = %v, want %v", s, n, got, want)
		}
		for i := range want {
			if want[i][0] != got[i][0] || want[i][1] != got[i][1] {
				t.Fatalf("forwardMarkers(%q, %d) = %v, want %v", s, n, got, want)
			}
		}
	})
}

// textHits reads ASCII pieces one by one; it must find what searching
// their newline-joined, lower-cased text finds.
func FuzzTextHits(f *testing.F) {
	f.Add("We found a PHISHING page", "Fwd: malware", "defaced site")
	f.Add("phishing", "kit", "")
	f.Add("ransom", "ware DDoS", "leak\ned")
	ix := &defaultRules.idx
	f.Fuzz(func(t *testing.T, a, b, c string) {
		pieces := []string{a, b, c}
		want, got := ix.textHitsJoined(pieces), ix.textHits(pieces)
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("keyword %q in %q: textHits %v, joined %v", ix.all[i].lower, pieces, got[i], want[i])
			}
		}
	})
}
