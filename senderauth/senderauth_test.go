package senderauth

import (
	"context"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
)

// newSigner publishes the test's DKIM keys: rsa and ed for example.com,
// other for other.example.
func newSigner(t *testing.T, d *testenv.DNS) *signer {
	t.Helper()
	k := testenv.NewDKIM(t, d)
	k.Key("rsa", "example.com", "rsa")
	k.Key("ed", "example.com", "ed25519")
	k.Key("other", "other.example", "rsa")
	return &signer{k}
}

type signer struct{ k *testenv.DKIM }

func (s *signer) sign(msg, key, domain, alg string) []byte { return s.k.Sign(msg, key, domain, alg) }

const plain = "From: Alice <alice@example.com>\r\nTo: csirt@example.org\r\nSubject: Phishing report\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a1@example.com>\r\n\r\nThe phish is at http://bad.example/.\r\n"

func TestSenderAuthentication(t *testing.T) {
	d := testenv.StartDNS(t)
	s := newSigner(t, d)
	d.TXT("example.com", "v=spf1 ip4:192.0.2.10 -all")
	d.TXT("_dmarc.example.com", "v=DMARC1; p=reject")
	d.TXT("other.example", "v=spf1 -all")
	d.TXT("nopolicy.example", "v=spf1 ?all")
	d.TXT("strict.example", "v=spf1 ip4:192.0.2.10 -all")
	d.TXT("_dmarc.strict.example", "v=DMARC1; p=quarantine; aspf=s")
	d.Fail("_dmarc.broken.example")
	c := &Checker{Resolver: NewResolver(d.Addr), TrustedAuthservIDs: []string{"mx.example.org"}}
	from := func(v string) string { return strings.Replace(plain, "alice@example.com", v, 1) }
	rsa := s.sign(plain, "rsa", "example.com", "rsa-sha256")
	altered := []byte(strings.Replace(string(rsa), "http://bad.example/", "http://worse.example/", 1))
	cases := []struct {
		name   string
		raw    []byte
		domain string
		env    Envelope
		want   parse.Authentication
	}{
		{"rsa signed, from anywhere", rsa, "example.com", Envelope{Checked: true, ClientIP: "203.0.113.5", MailFrom: "alice@example.com", Helo: "mx.example.com"},
			parse.Authentication{DKIM: "pass", DKIMDomains: []string{"example.com"}, SPF: "fail", DMARC: "pass", FromAligned: true, Source: "checked"}},
		{"ed25519 signed", s.sign(plain, "ed", "example.com", "ed25519-sha256"), "example.com", Envelope{Checked: true, ClientIP: "203.0.113.5", MailFrom: "alice@example.com"},
			parse.Authentication{DKIM: "pass", DKIMDomains: []string{"example.com"}, SPF: "fail", DMARC: "pass", FromAligned: true, Source: "checked"}},
		{"body altered, SPF passes", altered, "example.com", Envelope{Checked: true, ClientIP: "192.0.2.10", MailFrom: "bounces@example.com"},
			parse.Authentication{DKIM: "fail", DKIMDomains: []string{}, SPF: "pass", DMARC: "pass", FromAligned: true, Source: "checked"}},
		{"body altered, from a stranger's IP", altered, "example.com", Envelope{Checked: true, ClientIP: "203.0.113.5", MailFrom: "alice@example.com"},
			parse.Authentication{DKIM: "fail", DKIMDomains: []string{}, SPF: "fail", DMARC: "fail", Source: "checked"}},
		{"unaligned signer", s.sign(plain, "other", "other.example", "rsa-sha256"), "example.com", Envelope{Checked: true, ClientIP: "203.0.113.5", MailFrom: "x@other.example"},
			parse.Authentication{DKIM: "pass", DKIMDomains: []string{"other.example"}, SPF: "fail", DMARC: "fail", Source: "checked"}},
		{"no signature, no policy", []byte(from("bob@nopolicy.example")), "nopolicy.example", Envelope{Checked: true, ClientIP: "203.0.113.5", MailFrom: "bob@nopolicy.example"},
			parse.Authentication{DKIM: "none", DKIMDomains: []string{}, SPF: "neutral", DMARC: "none", Source: "checked"}},
		{"strict SPF alignment, a subdomain's envelope", []byte(from("carol@strict.example")), "strict.example", Envelope{Checked: true, ClientIP: "192.0.2.10", MailFrom: "b@mail.strict.example"},
			parse.Authentication{DKIM: "none", DKIMDomains: []string{}, SPF: "none", DMARC: "fail", Source: "checked"}},
		{"DNS down for the policy", []byte(from("dave@broken.example")), "broken.example", Envelope{Checked: true, ClientIP: "192.0.2.10", MailFrom: "dave@broken.example"},
			parse.Authentication{DKIM: "none", DKIMDomains: []string{}, SPF: "none", DMARC: "temperror", Source: "checked"}},
		{"a trusted receiver's results", []byte("Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=alice@example.com; dmarc=pass header.from=example.com\r\n" + plain), "example.com", Envelope{},
			parse.Authentication{DKIM: "none", DKIMDomains: []string{}, SPF: "pass", DMARC: "pass", FromAligned: true, Source: "authentication-results: mx.example.org"}},
		{"an untrusted receiver's results", []byte("Authentication-Results: evil.example; spf=pass smtp.mailfrom=alice@example.com\r\n" + plain), "example.com", Envelope{},
			parse.Authentication{DKIM: "none", DKIMDomains: []string{}, SPF: "none", DMARC: "fail", Source: "none"}},
	}
	for _, tc := range cases {
		got := c.Check(context.Background(), tc.raw, tc.domain, tc.env)
		got.Detail = ""
		if got.DKIM != tc.want.DKIM || strings.Join(got.DKIMDomains, ",") != strings.Join(tc.want.DKIMDomains, ",") || got.SPF != tc.want.SPF ||
			got.DMARC != tc.want.DMARC || got.FromAligned != tc.want.FromAligned || got.Source != tc.want.Source {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, *got, tc.want)
		}
	}
}

// TestDNSFailureIsTempError: a DKIM key that cannot be fetched is a
// temperror, not a failure, and the check returns within its timeout.
func TestDNSFailureIsTempError(t *testing.T) {
	d := testenv.StartDNS(t)
	s := newSigner(t, d)
	d.Fail("rsa._domainkey.example.com")
	c := &Checker{Resolver: NewResolver(d.Addr)}
	got := c.Check(context.Background(), s.sign(plain, "rsa", "example.com", "rsa-sha256"), "example.com", Envelope{})
	if got.DKIM != "temperror" || got.DMARC != "none" {
		t.Fatalf("%+v", *got)
	}
}
