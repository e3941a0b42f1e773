package senderauth

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
)

// signer makes DKIM keys with python3-dkim's dknewkey and publishes each
// under SELECTOR._domainkey.DOMAIN; sign signs a message with dkimsign.
type signer struct {
	t   *testing.T
	dir string
}

func newSigner(t *testing.T, d *testenv.DNS) *signer {
	t.Helper()
	if _, err := exec.LookPath("dkimsign"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dkimsign not installed (CI installs python3-dkim)")
		}
		t.Skip("dkimsign (python3-dkim) not installed")
	}
	s := &signer{t: t, dir: t.TempDir()}
	for _, k := range []struct{ name, ktype, domain string }{{"rsa", "rsa", "example.com"}, {"ed", "ed25519", "example.com"}, {"other", "rsa", "other.example"}} {
		cmd := exec.Command("dknewkey", "--ktype", k.ktype, filepath.Join(s.dir, k.name))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dknewkey: %v\n%s", err, out)
		}
		rec, err := os.ReadFile(filepath.Join(s.dir, k.name+".dns"))
		if err != nil {
			t.Fatal(err)
		}
		d.TXT(k.name+"._domainkey."+k.domain, strings.TrimSpace(string(rec)))
	}
	return s
}

func (s *signer) sign(msg, key, domain, alg string) []byte {
	s.t.Helper()
	cmd := exec.Command("dkimsign", "--signalg", alg, key, domain, filepath.Join(s.dir, key+".key"))
	cmd.Stdin = strings.NewReader(msg)
	signed, err := cmd.Output() // the message with its DKIM-Signature on top
	if err != nil {
		s.t.Fatalf("dkimsign: %v", err)
	}
	return signed
}

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
