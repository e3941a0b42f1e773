package constituency

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

const sample = `constituents:
  - id: acme
    name: ACME Corp
    networks: [192.0.2.0/25, "2001:db8:a::/48", 198.51.100.7]
    domains: [acme.example]
    contacts:
      - address: Security@acme.example
        language: ja
  - id: acme-lab
    name: ACME research lab
    networks: [192.0.2.64/26, "2001:db8:a:1::/64"]
    domains: [lab.acme.example]
    contacts: [{address: lab@acme.example}]
    notify: staff
  - id: beta
    asns: [64500]
    contacts: [{address: cert@beta.example, key_file: beta.asc}]
  - id: quiet
    domains: [quiet.example]
    notify: never
`

const table = "# start\tend\tasn\n" +
	"203.0.113.0\t203.0.113.255\t64500\tJP\tBETA-NET\n" +
	"2001:db8:b::\t2001:db8:b:ffff:ffff:ffff:ffff:ffff\t64500\n" +
	"198.18.0.0\t198.19.255.255\t0\tNone\tNot routed\n" +
	"100.64.0.0\t100.64.0.255\t64999\n"

func sampleSet(t testing.TB) *Set {
	t.Helper()
	cs, err := Parse("c.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseASNTable("asn.tsv", []byte(table))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cs, tab)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseNormalises(t *testing.T) {
	s := sampleSet(t)
	acme, ok := s.Get("acme")
	if !ok || acme.Notify != NotifyAuto || acme.Contacts[0].Address != "security@acme.example" || acme.Contacts[0].Language != "ja" {
		t.Fatalf("acme: %+v", acme)
	}
	if acme.Networks[2] != "198.51.100.7/32" {
		t.Fatalf("a bare address is a /32: %v", acme.Networks)
	}
	if beta, _ := s.Get("beta"); beta.Name != "beta" || beta.Contacts[0].Language != "en" {
		t.Fatalf("beta: %+v", beta)
	}
	ResolveKeyFiles(s.list, "/etc/madoguchi")
	if beta, _ := s.Get("beta"); beta.Contacts[0].KeyFile != "/etc/madoguchi/beta.asc" {
		t.Fatalf("key file: %q", beta.Contacts[0].KeyFile)
	}
}

func TestMatchRules(t *testing.T) {
	s := sampleSet(t)
	cases := []struct {
		kind vocab.IndicatorKind
		v    string
		want string // constituent, "" none
		by   string
	}{
		// IPv4 edges: 192.0.2.0/25 is .0-.127, with .64/26 (.64-.127) the lab's.
		{vocab.IPv4, "192.0.2.0", "acme", "network 192.0.2.0/25"},
		{vocab.IPv4, "192.0.2.63", "acme", "network 192.0.2.0/25"},
		{vocab.IPv4, "192.0.2.64", "acme-lab", "network 192.0.2.64/26"},
		{vocab.IPv4, "192.0.2.127", "acme-lab", "network 192.0.2.64/26"},
		{vocab.IPv4, "192.0.2.128", "", ""},
		{vocab.IPv4, "198.51.100.7", "acme", "network 198.51.100.7/32"},
		{vocab.IPv4, "198.51.100.8", "", ""},
		// IPv6 edges.
		{vocab.IPv6, "2001:db8:a::", "acme", "network 2001:db8:a::/48"},
		{vocab.IPv6, "2001:db8:a:ffff:ffff:ffff:ffff:ffff", "acme", "network 2001:db8:a::/48"},
		{vocab.IPv6, "2001:db8:a:1::1", "acme-lab", "network 2001:db8:a:1::/64"},
		{vocab.IPv6, "2001:db8:b::1", "beta", "AS64500"},
		{vocab.IPv6, "2001:db8:c::1", "", ""},
		{vocab.IPv6, "::ffff:192.0.2.5", "acme", "network 192.0.2.0/25"},
		// ASN ranges: both ends, just outside, a not-routed row, an AS nobody has.
		{vocab.IPv4, "203.0.113.0", "beta", "AS64500"},
		{vocab.IPv4, "203.0.113.255", "beta", "AS64500"},
		{vocab.IPv4, "203.0.114.0", "", ""},
		{vocab.IPv4, "203.0.112.255", "", ""},
		{vocab.IPv4, "198.18.0.1", "", ""},
		{vocab.IPv4, "100.64.0.1", "", ""},
		// Domains: the domain, its subdomains, the longest one; not a look-alike.
		{vocab.Domain, "acme.example", "acme", "domain acme.example"},
		{vocab.Domain, "www.acme.example", "acme", "domain acme.example"},
		{vocab.Domain, "lab.acme.example", "acme-lab", "domain lab.acme.example"},
		{vocab.Domain, "gpu1.lab.acme.example", "acme-lab", "domain lab.acme.example"},
		{vocab.Domain, "notacme.example", "", ""},
		{vocab.Domain, "acme.example.evil.test", "", ""},
		{vocab.Domain, "example", "", ""},
		// URLs by host (a name or an address), e-mail by domain.
		{vocab.URL, "http://login.acme.example/x?y", "acme", "domain acme.example"},
		{vocab.URL, "http://[2001:db8:a::9]:8080/", "acme", "network 2001:db8:a::/48"},
		{vocab.URL, "https://203.0.113.9/", "beta", "AS64500"},
		{vocab.Email, "phish@lab.acme.example", "acme-lab", "domain lab.acme.example"},
		{vocab.Email, "x@elsewhere.example", "", ""},
		// What is never a constituent's.
		{vocab.SHA256, strings.Repeat("a", 64), "", ""},
		{vocab.IPv4, "not an address", "", ""},
	}
	for _, c := range cases {
		m := s.Match([]Candidate{{c.kind, c.v}}, Exclude{})
		got, by := "", ""
		if len(m) == 1 {
			got, by = m[0].Constituent, m[0].By
		} else if len(m) > 1 {
			t.Errorf("%s %s: %d matches", c.kind, c.v, len(m))
		}
		if got != c.want || by != c.by {
			t.Errorf("%s %s: %q by %q, want %q by %q", c.kind, c.v, got, by, c.want, c.by)
		}
	}
}

// TestReporterIsNotAbout: the reporter's address, domain and IP name the
// reporter, not a system the report is about; a host under the
// reporter's domain still is.
func TestReporterIsNotAbout(t *testing.T) {
	s := sampleSet(t)
	ex := Exclude{Addresses: []string{"security@acme.example"}, Domains: []string{"acme.example"}, IPs: []string{"192.0.2.10"}}
	m := s.Match([]Candidate{
		{vocab.Email, "security@acme.example"},
		{vocab.Email, "other@acme.example"},
		{vocab.Domain, "acme.example"},
		{vocab.IPv4, "192.0.2.10"},
		{vocab.URL, "http://acme.example/"},
		{vocab.Domain, "www.acme.example"},
		{vocab.IPv4, "192.0.2.11"},
		{vocab.IPv4, "192.0.2.11"}, // once
	}, ex)
	var got []string
	for _, x := range m {
		got = append(got, x.Value)
	}
	if strings.Join(got, " ") != "www.acme.example 192.0.2.11" {
		t.Fatalf("matched %q", got)
	}
}

// TestOwnReportMakesNoMatches: a constituent that writes (from a contact
// address or from its domain, e.g. answering our notice and quoting it)
// is not told about its own indicators; others named still are.
func TestOwnReportMakesNoMatches(t *testing.T) {
	s := sampleSet(t)
	cands := []Candidate{{vocab.IPv4, "192.0.2.5"}, {vocab.IPv4, "203.0.113.5"}}
	for _, sender := range []string{"security@acme.example", "SOC@www.acme.example"} {
		m := s.Match(cands, Exclude{Sender: sender})
		if len(m) != 1 || m[0].Constituent != "beta" {
			t.Errorf("from %s: %+v", sender, m)
		}
	}
	if m := s.Match(cands, Exclude{Sender: "cert@beta.example"}); len(m) != 1 || m[0].Constituent != "acme" {
		t.Errorf("from beta's contact: %+v", m)
	}
	for addr, want := range map[string]string{"security@acme.example": "acme", "x@gpu.lab.acme.example": "acme-lab", "cert@beta.example": "beta", "a@elsewhere.example": "", "no-at-sign": ""} {
		if got := s.SenderOf(addr); got != want {
			t.Errorf("SenderOf(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ file, want string }{
		{"constituents:\n  - id: Bad ID\n    notify: never\n", `constituents[0] (Bad ID): id: "Bad ID" must be`},
		{"constituents:\n  - id: a\n    notify: never\n  - id: a\n    notify: never\n", "constituents[1] (a): id: also used by constituents[0]"},
		{"constituents:\n  - id: a\n    networks: [192.0.2.0/33]\n    notify: never\n", `networks[0]: "192.0.2.0/33" is not a network`},
		{"constituents:\n  - id: a\n    domains: [-bad-.example]\n    notify: never\n", `domains[0]: "-bad-.example" is not a domain name`},
		{"constituents:\n  - id: a\n    contacts: [{address: \"x@y, z@w\"}]\n", "contacts[0].address"},
		{"constituents:\n  - id: a\n    contacts: [{address: x@y.example, language: fr}]\n", `language: "fr" is not en or ja`},
		{"constituents:\n  - id: a\n", "contacts: none, so notify must be never"},
		{"constituents:\n  - id: a\n    notify: sometimes\n", `notify: "sometimes" is not auto`},
		{"constituents:\n  - id: a\n    asn: [1]\n", "field asn not found"},
		{"constituents:\n  - id: a\n    asns: [0]\n    notify: never\n", "asns[0]: 0 is not an AS number"},
	}
	for _, c := range cases {
		_, err := Parse("c.yaml", []byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "c.yaml: ") {
			t.Errorf("%q: %v, want %q", c.file, err, c.want)
		}
	}
	// Every problem at once.
	_, err := Parse("c.yaml", []byte("constituents:\n  - id: a\n    notify: x\n    networks: [z]\n"))
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Fatalf("want three problems: %v", err)
	}
	// The same network or domain for two constituents.
	cs, err := Parse("c.yaml", []byte("constituents:\n  - id: a\n    networks: [192.0.2.0/24]\n    notify: never\n  - id: b\n    networks: [192.0.2.1/24]\n    notify: never\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cs, nil); err == nil || !strings.Contains(err.Error(), "network 192.0.2.0/24 is also a's") {
		t.Fatalf("duplicate network: %v", err)
	}
	for _, tsv := range []string{"192.0.2.0\t192.0.2.255\n", "192.0.2.9\t192.0.2.1\t5\n", "192.0.2.0\t::1\t5\n", "192.0.2.0\t192.0.2.9\t5\n192.0.2.5\t192.0.2.20\t6\n"} {
		if _, err := ParseASNTable("t.tsv", []byte(tsv)); err == nil || !strings.HasPrefix(err.Error(), "t.tsv") {
			t.Errorf("%q: %v", tsv, err)
		}
	}
}

// BenchmarkMatch: a table of 100,000 networks of mixed lengths, v4 and
// v6, and 100,000 domains; one indicator matched per iteration.
func BenchmarkMatch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	sb.WriteString("constituents:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "  - id: c%d\n    notify: never\n    networks: [", i)
		for k := range 10 {
			if k > 0 {
				sb.WriteString(", ")
			}
			if k%3 == 2 {
				var a [16]byte
				a[0], a[1] = 0x20, 0x01
				for j := 2; j < 8; j++ {
					a[j] = byte(rng.Uint32())
				}
				fmt.Fprintf(&sb, "%q", netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(33)).Masked())
			} else {
				a := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(222)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
				fmt.Fprintf(&sb, "%s", netip.PrefixFrom(a, 16+rng.IntN(17)).Masked())
			}
		}
		fmt.Fprintf(&sb, "]\n    domains: [")
		for k := range 10 {
			if k > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "d%d-%d.example", i, k)
		}
		sb.WriteString("]\n")
	}
	cs, err := Parse("bench.yaml", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	var uniq []Constituent
	seen := map[string]bool{}
	for _, c := range cs { // random prefixes may collide: keep the first
		var nets []string
		for _, n := range c.Networks {
			if !seen[n] {
				seen[n] = true
				nets = append(nets, n)
			}
		}
		c.Networks = nets
		uniq = append(uniq, c)
	}
	s, err := New(uniq, nil)
	if err != nil {
		b.Fatal(err)
	}
	cands := make([]Candidate, 1024)
	for i := range cands {
		switch i % 3 {
		case 0:
			cands[i] = Candidate{vocab.IPv4, netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}).String()}
		case 1:
			cands[i] = Candidate{vocab.Domain, fmt.Sprintf("www.d%d-%d.example", rng.IntN(20000), rng.IntN(10))}
		default:
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				a[j] = byte(rng.Uint32())
			}
			cands[i] = Candidate{vocab.IPv6, netip.AddrFrom16(a).String()}
		}
	}
	for i := 0; b.Loop(); i++ {
		s.Match(cands[i%len(cands):i%len(cands)+1], Exclude{})
	}
	b.ReportMetric(float64(len(s.nets)), "networks")
	b.ReportMetric(float64(len(s.domains)), "domains")
}
