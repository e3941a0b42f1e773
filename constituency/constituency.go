package constituency

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Policy is how a constituent wants to be told.
type Policy string

const (
	// NotifyAuto: notices are sent when their aggregation window ends.
	NotifyAuto Policy = "auto"
	// NotifyStaff: notices are held until staff send them.
	NotifyStaff Policy = "staff"
	// NotifyNever: matches are recorded on the incident, nothing is sent.
	NotifyNever Policy = "never"
)

// Constituent is one organisation the team serves.
type Constituent struct {
	ID       string    `yaml:"id"`
	Name     string    `yaml:"name"`
	Networks []string  `yaml:"networks"`
	ASNs     []uint32  `yaml:"asns"`
	Domains  []string  `yaml:"domains"`
	Contacts []Contact `yaml:"contacts"`
	Notify   Policy    `yaml:"notify"`
}

// Contact is an address notices go to.
type Contact struct {
	Address string `yaml:"address"`
	// KeyFile is an OpenPGP public key (armored or binary): notices to
	// this contact are encrypted to it, and never sent in clear. Relative
	// paths are resolved against the constituents file's directory.
	KeyFile  string `yaml:"key_file"`
	Language string `yaml:"language"` // en (default) | ja
}

// file is the constituents file.
type file struct {
	Constituents []Constituent `yaml:"constituents"`
}

// Limits bound what a constituents file may hold (a typo or a generated
// file gone wrong must give an error, not a daemon out of memory).
const (
	MaxConstituents = 100000
	MaxEntries      = 1000000 // networks + domains + ASNs in all
)

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Parse reads a constituents file (name is for errors). Every problem is
// reported, one per line.
func Parse(name string, data []byte) ([]Constituent, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %s", name, oneLine(err.Error()))
	}
	var problems []string
	bad := func(i int, c *Constituent, format string, args ...any) {
		who := fmt.Sprintf("constituents[%d]", i)
		if c.ID != "" {
			who += " (" + printable(c.ID) + ")"
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %s", name, who, fmt.Sprintf(format, args...)))
	}
	if len(f.Constituents) > MaxConstituents {
		return nil, fmt.Errorf("%s: %d constituents, more than %d", name, len(f.Constituents), MaxConstituents)
	}
	entries := 0
	ids := map[string]int{}
	for i := range f.Constituents {
		c := &f.Constituents[i]
		entries += len(c.Networks) + len(c.Domains) + len(c.ASNs)
		if entries > MaxEntries {
			return nil, fmt.Errorf("%s: more than %d networks, domains and ASNs", name, MaxEntries)
		}
		if !idRE.MatchString(c.ID) {
			bad(i, c, "id: %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", printable(c.ID))
		} else if j, dup := ids[c.ID]; dup {
			bad(i, c, "id: also used by constituents[%d]", j)
		} else {
			ids[c.ID] = i
		}
		if c.Name == "" {
			c.Name = c.ID
		}
		switch c.Notify {
		case "":
			c.Notify = NotifyAuto
		case NotifyAuto, NotifyStaff, NotifyNever:
		default:
			bad(i, c, "notify: %q is not auto, staff or never", printable(string(c.Notify)))
		}
		for k, n := range c.Networks {
			p, err := parseNetwork(n)
			if err != nil {
				bad(i, c, "networks[%d]: %v", k, err)
				continue
			}
			c.Networks[k] = p.String()
		}
		for k, d := range c.Domains {
			nd, ok := normalDomain(d)
			if !ok {
				bad(i, c, "domains[%d]: %q is not a domain name", k, printable(d))
				continue
			}
			c.Domains[k] = nd
		}
		for k, a := range c.ASNs {
			if a == 0 {
				bad(i, c, "asns[%d]: 0 is not an AS number", k)
			}
		}
		if len(c.Contacts) == 0 && c.Notify != NotifyNever {
			bad(i, c, "contacts: none, so notify must be never")
		}
		for k := range c.Contacts {
			ct := &c.Contacts[k]
			a, err := mail.ParseAddress(ct.Address)
			if err != nil || a.Address != ct.Address || strings.ContainsAny(ct.Address, "\r\n<>,;\" ") {
				bad(i, c, "contacts[%d].address: %q is not a plain address", k, printable(ct.Address))
			}
			ct.Address = strings.ToLower(ct.Address)
			switch ct.Language {
			case "":
				ct.Language = "en"
			case "en", "ja":
			default:
				bad(i, c, "contacts[%d].language: %q is not en or ja", k, printable(ct.Language))
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return f.Constituents, nil
}

// ResolveKeyFiles makes the contacts' relative key files relative to dir.
func ResolveKeyFiles(cs []Constituent, dir string) {
	for i := range cs {
		for k := range cs[i].Contacts {
			if p := cs[i].Contacts[k].KeyFile; p != "" && !filepath.IsAbs(p) {
				cs[i].Contacts[k].KeyFile = filepath.Join(dir, p)
			}
		}
	}
}

// parseNetwork reads a CIDR or a single address (a /32 or /128), masked.
func parseNetwork(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr()))
		if p.Bits() < 0 {
			return netip.Prefix{}, fmt.Errorf("%q is not a network", printable(s))
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a network", printable(s))
}

// unmapBits is what a prefix of an IPv4-mapped IPv6 address loses when
// the address is unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

var labelRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// normalDomain lower-cases a domain name and checks its shape.
func normalDomain(d string) (string, bool) {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" || len(d) > 253 {
		return "", false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", false
	}
	if slices.ContainsFunc(labels, func(l string) bool { return !labelRE.MatchString(l) }) {
		return "", false
	}
	return d, true
}

// printable quotes control characters for error messages.
func printable(s string) string {
	q := fmt.Sprintf("%q", s)
	s = q[1 : len(q)-1]
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
