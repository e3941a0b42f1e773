package parse

import (
	"slices"
	"strings"
	"testing"
)

func TestDecodeHeaderJapanese(t *testing.T) {
	cases := []struct{ in, want string }{
		{"=?ISO-2022-JP?B?GyRCJEgkaiQ1JDcbKEI=?=", "とりさし"},
		// one character split across two encoded words (broken mailers)
		{"=?UTF-8?B?5pS5?= =?UTF-8?B?44GW44KT?=", "改ざん"},
		{"=?UTF-8?B?5p?= =?UTF-8?B?S5?=", "改"},
		{"=?utf-8?q?caf=C3=A9?= au lait", "café au lait"},
		{"Verd\xe4chtige E-Mail \x96 Phishing?", "Verdächtige E-Mail – Phishing?"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		if got := decodeHeader(c.in); got != c.want {
			t.Errorf("decodeHeader(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecodeCharsets(t *testing.T) {
	cases := []struct {
		in      []byte
		cs      string
		want    string
		wantCS  string
		warning bool
	}{
		{[]byte{0x83, 0x5c, 0x83, 0x74, 0x83, 0x67}, "Shift_JIS", "ソフト", "shift_jis", false},
		{[]byte{0x83, 0x5c, 0x83, 0x74, 0x83, 0x67}, "cp932", "ソフト", "cp932", false},
		{[]byte{0xa4, 0xa2}, "euc-jp", "あ", "euc-jp", false},
		{[]byte("\x1b$B$\"\x1b(B"), "iso-2022-jp", "あ", "iso-2022-jp", false},
		{[]byte{0xc1, 0xe1}, "koi8-r", "аА", "koi8-r", false},
		{[]byte{0xe4}, "", "ä", "windows-1252", true},
		{[]byte{0x82, 0xa0, 0x82, 0xa2}, "", "あい", "shift_jis", true},
		{[]byte("abc"), "x-unknown", "abc", "x-unknown", true},
	}
	for _, c := range cases {
		got, cs, w := decodeCharset(c.in, c.cs)
		if got != c.want || cs != c.wantCS || (w != "") != c.warning {
			t.Errorf("decodeCharset(%x, %q) = %q %q %q", c.in, c.cs, got, cs, w)
		}
	}
}

func TestIndicatorsRefangAndOwn(t *testing.T) {
	opt := Options{OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org", "csirt.example.org"}}
	c := newCollector(&opt)
	c.scan("hxxps://login[.]bad[.]example/owa/ 203.0.113[.]14 billing[@]x[.]example cdn[dot]bad2.example\n" +
		"csirt@example.org https://csirt.example.org/ www2.example.org 10.0.0.0/8 2001:DB8::1 CVE-2024-3400 version 1.2.3.4.5\n" +
		"OpenPGP: 2270FB17A0587B63DAC8B59F7E84413A865B03EB\nd41d8cd98f00b204e9800998ecf8427e")
	in := c.ind
	check := func(kind string, got []string, want, not []string) {
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s lacks %s: %v", kind, w, got)
			}
		}
		for _, n := range not {
			if slices.Contains(got, n) {
				t.Errorf("%s has %s", kind, n)
			}
		}
	}
	check("urls", in.URLs, []string{"https://login.bad.example/owa/"}, []string{"https://csirt.example.org/"})
	check("ipv4", in.IPv4, []string{"203.0.113.14", "10.0.0.0/8"}, []string{"1.2.3.4", "2.3.4.5"})
	check("ipv6", in.IPv6, []string{"2001:db8::1"}, nil)
	check("emails", in.Emails, []string{"billing@x.example"}, []string{"csirt@example.org"})
	check("domains", in.Domains, []string{"login.bad.example", "www2.example.org"}, []string{"example.org", "csirt.example.org"})
	check("cves", in.CVEs, []string{"CVE-2024-3400"}, nil)
	check("sha1", in.SHA1, nil, []string{"2270fb17a0587b63dac8b59f7e84413a865b03eb"})
	check("md5", in.MD5, []string{"d41d8cd98f00b204e9800998ecf8427e"}, nil)
}

func TestAckDecisions(t *testing.T) {
	opt := Options{OwnAddresses: []string{"csirt@example.org"}}
	cases := []struct {
		name, hdr string
		env       bool
		from      string
		want      bool
	}{
		{"human", "From: a@b.example\nSubject: hi\n", false, "", true},
		{"auto-submitted", "From: a@b.example\nAuto-Submitted: auto-replied\n", false, "", false},
		{"auto-submitted no", "From: a@b.example\nAuto-Submitted: no\n", false, "", true},
		{"precedence", "From: a@b.example\nPrecedence: junk\n", false, "", false},
		{"list", "From: a@b.example\nList-Id: <x.lists>\n", false, "", false},
		{"null envelope", "From: a@b.example\n", true, "", false},
		{"mailer-daemon", "From: MAILER-DAEMON@b.example\n", false, "", false},
		{"team itself", "From: CSIRT <csirt@example.org>\n", false, "", false},
		{"x-auto-response-suppress", "From: a@b.example\nX-Auto-Response-Suppress: OOF, AutoReply\n", false, "", false},
		{"return-path null", "Return-Path: <>\nFrom: a@b.example\n", false, "", false},
		{"no address", "Subject: x\n", false, "", false},
		{"our own ack (loop)", "From: other-csirt@peer.example\nAuto-Submitted: auto-replied\nSubject: [CSIRT#2026-000001] Re: x\n", false, "", false},
	}
	for _, c := range cases {
		o := opt
		o.HasEnvelope, o.MailFrom = c.env, c.from
		rep, _ := Parse([]byte(c.hdr+"\nbody\n"), o)
		if rep.Ack.Send != c.want {
			t.Errorf("%s: ack.send %v (%s)", c.name, rep.Ack.Send, rep.Ack.Reason)
		}
	}
}

func TestTLPAndTicket(t *testing.T) {
	rep, _ := Parse([]byte("From: a@b.example\nSubject: RE: AW: 転送: [CSIRT#2026-000123] x TLP:AMBER\n\nTLP:RED inside\n"), Options{})
	if rep.TLP == nil || *rep.TLP != "red" {
		t.Fatalf("tlp %v", rep.TLP)
	}
	if rep.Thread.Ticket == nil || *rep.Thread.Ticket != "CSIRT#2026-000123" {
		t.Fatalf("ticket %v", rep.Thread.Ticket)
	}
	if findTLP("TLP:WHITE") != "clear" || findTLP("TLP:AMBER+STRICT") != "amber+strict" || findTLP("nothing") != "" {
		t.Fatal("tlp mapping")
	}
}

func TestRulesExtension(t *testing.T) {
	r, err := LoadRules([]byte("rules:\n  - name: cryptojacking\n    taxonomy: malicious-code\n    type: infected-system\n    keywords: [coinminer]\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := Parse([]byte("From: a@b.example\nSubject: coinminer on host\n\nx\n"), Options{Rules: r})
	if rep.Classification.Rule != "cryptojacking" {
		t.Fatalf("%+v", rep.Classification)
	}
	if _, err := LoadRules([]byte("rules:\n  - name: x\n    bogus: 1\n")); err == nil {
		t.Fatal("unknown key in rules accepted")
	}
}

// TestInlineForwardReceivedChain: a forward pasted with its full headers
// gives the forwarded message's Received chain (folded and quoted lines
// joined) and its originating IP, the oldest public hop.
func TestInlineForwardReceivedChain(t *testing.T) {
	cases := []struct{ name, prefix string }{{"plain", ""}, {"quoted", "> "}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.prefix
			body := "Please look at this one.\n\n-------- Forwarded Message --------\n" +
				q + "Return-Path: <x@scam.example>\n" +
				q + "Received: from mx.example.org (mx.example.org [192.0.2.10])\n" +
				q + "\tby inbox.example.org with ESMTPS id 1; Mon, 30 Nov 2026 10:00:00 +0000\n" +
				q + "Received: from sender.scam.example (unknown [203.0.113.77])\n" +
				q + "        by mx.example.org with ESMTP id 2; Mon, 30 Nov 2026 09:59:58 +0000\n" +
				q + "From: Bank <x@scam.example>\n" +
				q + "Subject: Verify your account\n" +
				q + "Date: Mon, 30 Nov 2026 09:59:57 +0000\n" +
				q + "Message-ID: <abc@scam.example>\n" +
				q + "\n" + q + "Click here.\n"
			rep, err := Parse([]byte("From: staff@example.org\nSubject: Fwd: Verify your account\n\n"+body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Forwarded) != 1 {
				t.Fatalf("forwarded: %d", len(rep.Forwarded))
			}
			fw := rep.Forwarded[0]
			if len(fw.ReceivedChain) != 2 || !strings.Contains(fw.ReceivedChain[1], "by mx.example.org with ESMTP id 2") {
				t.Fatalf("received chain: %q", fw.ReceivedChain)
			}
			if fw.OriginatingIP != "203.0.113.77" || fw.Subject != "Verify your account" || fw.From != "x@scam.example" {
				t.Fatalf("originating %q subject %q from %q", fw.OriginatingIP, fw.Subject, fw.From)
			}
			if !slices.Contains(rep.Indicators.IPv4, "203.0.113.77") {
				t.Fatalf("the originating IP is not among the indicators: %v", rep.Indicators.IPv4)
			}
		})
	}
}

// TestKeywordBoundaries: the one-pass keyword index keeps the word rules of
// the patterns it replaced: ASCII keywords start at a word boundary, short
// and plural ones end at one, and Japanese ones match anywhere.
func TestKeywordBoundaries(t *testing.T) {
	r, err := LoadRules([]byte("rules:\n  - name: t-dos\n    taxonomy: availability\n    type: dos\n    keywords: [dos, floods]\n" +
		"  - name: t-leak\n    taxonomy: information-content-security\n    type: data-leak\n    keywords: [leak, 情報漏えい]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text string
		want []string // keywords expected to hit
	}{
		{"windows update", nil},
		{"a DoS attack", []string{"dos"}},
		{"DOS.", []string{"dos"}},
		{"the data leaked yesterday", []string{"leak"}},
		{"unleak", nil},
		{"floodsx", nil},
		{"syn floods seen", []string{"floods"}},
		{"顧客の情報漏えいが発生", []string{"情報漏えい"}},
		{"dos", []string{"dos"}},
	}
	for _, c := range cases {
		got := make([]bool, len(r.idx.all))
		r.idx.hits(strings.ToLower(c.text), got)
		var hit []string
		for i, ok := range got {
			if ok {
				hit = append(hit, r.idx.all[i].lower)
			}
		}
		for _, w := range c.want {
			if !slices.Contains(hit, w) {
				t.Errorf("%q: %q not found (hits %q)", c.text, w, hit)
			}
		}
		for _, h := range hit {
			if !slices.Contains(c.want, h) && slices.Contains([]string{"dos", "floods", "leak", "情報漏えい"}, h) {
				t.Errorf("%q: %q found where it is not a word", c.text, h)
			}
		}
	}
}
