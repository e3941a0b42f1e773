package constituency

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

// Set is the constituents ready for matching. It is read-only once built.
type Set struct {
	list    []Constituent
	byID    map[string]int
	nets    map[netip.Prefix]int // masked prefix → constituent
	lens4   []int                // prefix lengths present, longest first
	lens6   []int
	domains map[string]int
	asns    map[uint32]int
	table   *ASNTable
}

// New builds a Set; table may be nil (ASNs then match nothing).
func New(cs []Constituent, table *ASNTable) (*Set, error) {
	s := &Set{list: cs, byID: map[string]int{}, nets: map[netip.Prefix]int{}, domains: map[string]int{}, asns: map[uint32]int{}, table: table}
	var problems []string
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for i, c := range cs {
		s.byID[c.ID] = i
		for _, n := range c.Networks {
			p, err := parseNetwork(n)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: networks: %v", c.ID, err))
				continue
			}
			if j, dup := s.nets[p]; dup && j != i {
				problems = append(problems, fmt.Sprintf("%s: network %s is also %s's", c.ID, p, cs[j].ID))
				continue
			}
			s.nets[p] = i
			if p.Addr().Is4() {
				seen4[p.Bits()] = true
			} else {
				seen6[p.Bits()] = true
			}
		}
		for _, d := range c.Domains {
			if j, dup := s.domains[d]; dup && j != i {
				problems = append(problems, fmt.Sprintf("%s: domain %s is also %s's", c.ID, d, cs[j].ID))
				continue
			}
			s.domains[d] = i
		}
		for _, a := range c.ASNs {
			if j, dup := s.asns[a]; dup && j != i {
				problems = append(problems, fmt.Sprintf("%s: AS%d is also %s's", c.ID, a, cs[j].ID))
				continue
			}
			s.asns[a] = i
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("constituents: %s", strings.Join(problems, "; "))
	}
	for l := range seen4 {
		s.lens4 = append(s.lens4, l)
	}
	for l := range seen6 {
		s.lens6 = append(s.lens6, l)
	}
	slices.Sort(s.lens4)
	slices.Reverse(s.lens4)
	slices.Sort(s.lens6)
	slices.Reverse(s.lens6)
	return s, nil
}

// Len is the number of constituents.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}

// Get is a constituent by ID.
func (s *Set) Get(id string) (Constituent, bool) {
	if s == nil {
		return Constituent{}, false
	}
	i, ok := s.byID[id]
	if !ok {
		return Constituent{}, false
	}
	return s.list[i], true
}

// Constituents are all of them, in the file's order.
func (s *Set) Constituents() []Constituent {
	if s == nil {
		return nil
	}
	return s.list
}

// Candidate is something a report names that may be a constituent's: an
// indicator (ipv4, ipv6, domain, url, email) or an address the report's
// structure names (kind ipv4/ipv6).
type Candidate struct {
	Kind  vocab.IndicatorKind
	Value string
}

// Match is one candidate that belongs to a constituent, and why.
type Match struct {
	Constituent string
	Kind        vocab.IndicatorKind
	Value       string
	By          string // "network 192.0.2.0/25", "domain acme.example", "AS64500"
}

// Exclude is what is never "about" a constituent: the reporter's own
// address, domain and IP (the team's own are never indicators at all).
type Exclude struct {
	Addresses []string // lower-case
	Domains   []string // lower-case, exact (a reporter's subdomains still match)
	IPs       []string
	// Sender is the reporter's address: a constituent it is a contact
	// of, or whose domains it writes from, gets no matches from its own
	// report (a reply quoting our notice must not make another).
	Sender string
}

// Match returns the candidates that belong to a constituent, in their
// order, each once.
func (s *Set) Match(cands []Candidate, ex Exclude) []Match {
	if s == nil || len(s.list) == 0 {
		return nil
	}
	var out []Match
	seen := map[Candidate]bool{}
	own := s.senderOf(strings.ToLower(ex.Sender))
	for _, c := range cands {
		c.Value = strings.ToLower(strings.TrimSpace(c.Value))
		if c.Value == "" || seen[c] {
			continue
		}
		seen[c] = true
		i, by := -1, ""
		switch c.Kind {
		case vocab.IPv4, vocab.IPv6:
			if slices.Contains(ex.IPs, c.Value) {
				continue
			}
			if a, err := netip.ParseAddr(c.Value); err == nil {
				i, by = s.addr(a)
			}
		case vocab.Domain:
			if slices.Contains(ex.Domains, c.Value) {
				continue
			}
			i, by = s.host(c.Value)
		case vocab.Email:
			if slices.Contains(ex.Addresses, c.Value) {
				continue
			}
			if _, d, ok := strings.Cut(c.Value, "@"); ok && !slices.Contains(ex.Domains, d) {
				i, by = s.host(d)
			}
		case vocab.URL:
			u, err := url.Parse(c.Value)
			if err != nil || u.Hostname() == "" {
				continue
			}
			h := u.Hostname()
			if a, err := netip.ParseAddr(h); err == nil {
				if !slices.Contains(ex.IPs, a.String()) {
					i, by = s.addr(a)
				}
			} else if !slices.Contains(ex.Domains, h) {
				i, by = s.host(h)
			}
		}
		if i >= 0 && !slices.Contains(own, i) {
			out = append(out, Match{Constituent: s.list[i].ID, Kind: c.Kind, Value: c.Value, By: by})
		}
	}
	return out
}

// SenderOf is the constituent an address writes for ("" if none): the
// first it is a contact of, else the one whose domain it is under.
func (s *Set) SenderOf(addr string) string {
	if s == nil {
		return ""
	}
	if own := s.senderOf(strings.ToLower(addr)); len(own) > 0 {
		return s.list[own[0]].ID
	}
	return ""
}

// senderOf are the constituents an address writes for: those it is a
// contact of and the one whose domain it is under.
func (s *Set) senderOf(addr string) []int {
	_, d, ok := strings.Cut(addr, "@")
	if !ok {
		return nil
	}
	var out []int
	for i, c := range s.list {
		if slices.ContainsFunc(c.Contacts, func(ct Contact) bool { return ct.Address == addr }) {
			out = append(out, i)
		}
	}
	if i, _ := s.host(d); i >= 0 {
		out = append(out, i)
	}
	return out
}

// addr is the constituent of an address: longest prefix, then ASN.
func (s *Set) addr(a netip.Addr) (int, string) {
	a = a.Unmap().WithZone("")
	lens := s.lens6
	if a.Is4() {
		lens = s.lens4
	}
	for _, l := range lens {
		p, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if i, ok := s.nets[p]; ok {
			return i, "network " + p.String()
		}
	}
	if asn, ok := s.table.Lookup(a); ok {
		if i, ok := s.asns[asn]; ok {
			return i, "AS" + strconv.FormatUint(uint64(asn), 10)
		}
	}
	return -1, ""
}

// host is the constituent of a host name: the longest configured domain
// it equals or is under.
func (s *Set) host(h string) (int, string) {
	h = strings.TrimSuffix(h, ".")
	for h != "" {
		if i, ok := s.domains[h]; ok {
			return i, "domain " + h
		}
		_, rest, ok := strings.Cut(h, ".")
		if !ok {
			break
		}
		h = rest
	}
	return -1, ""
}

// ASNTable maps address ranges to AS numbers (the common TSV of range
// start, range end, AS number and optional further columns, as iptoasn
// publishes it).
type ASNTable struct {
	ranges []asnRange // sorted by start, not overlapping
}

type asnRange struct {
	start, end netip.Addr
	asn        uint32
}

// MaxASNRanges bounds the table (the whole Internet is under a million).
const MaxASNRanges = 4000000

// ParseASNTable reads the TSV (name is for errors). Rows with AS number 0
// ("not routed") are skipped; lines starting with '#' are comments.
func ParseASNTable(name string, data []byte) (*ASNTable, error) {
	t := &ASNTable{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want range start, range end and AS number separated by tabs", name, line)
		}
		start, err1 := netip.ParseAddr(strings.TrimSpace(f[0]))
		end, err2 := netip.ParseAddr(strings.TrimSpace(f[1]))
		asn, err3 := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(f[2]), "AS"), 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s:%d: not an address range and AS number", name, line)
		}
		start, end = start.Unmap().WithZone(""), end.Unmap().WithZone("")
		if start.Is4() != end.Is4() || end.Less(start) {
			return nil, fmt.Errorf("%s:%d: the range ends before it starts", name, line)
		}
		if asn == 0 {
			continue
		}
		if len(t.ranges) >= MaxASNRanges {
			return nil, fmt.Errorf("%s:%d: more than %d ranges", name, line, MaxASNRanges)
		}
		t.ranges = append(t.ranges, asnRange{start, end, uint32(asn)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", name, line+1, err)
	}
	slices.SortFunc(t.ranges, func(a, b asnRange) int { return a.start.Compare(b.start) })
	for i := 1; i < len(t.ranges); i++ {
		if !t.ranges[i-1].end.Less(t.ranges[i].start) {
			return nil, fmt.Errorf("%s: ranges starting at %s and %s overlap", name, t.ranges[i-1].start, t.ranges[i].start)
		}
	}
	return t, nil
}

// Len is the number of ranges.
func (t *ASNTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.ranges)
}

// Lookup is the AS number of an address.
func (t *ASNTable) Lookup(a netip.Addr) (uint32, bool) {
	if t == nil || len(t.ranges) == 0 {
		return 0, false
	}
	a = a.Unmap().WithZone("")
	// The last range starting at or before a.
	i, found := slices.BinarySearchFunc(t.ranges, a, func(r asnRange, a netip.Addr) int { return r.start.Compare(a) })
	if !found {
		i--
	}
	if i < 0 {
		return 0, false
	}
	r := t.ranges[i]
	if r.start.Is4() != a.Is4() || r.end.Less(a) {
		return 0, false
	}
	return r.asn, true
}
