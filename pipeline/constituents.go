package pipeline

import (
	"net/netip"
	"strings"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// matches are the report's indicators that belong to a constituent.
// Besides the indicators themselves (which parse has gathered from the
// text, the forwards and the structured reports), the originating IP of
// each forwarded message and the source IPs of ARF / X-ARF / IODEF parts
// are candidates. The reporter's own address, domain and originating IP
// are not: they name who wrote, not what the report is about.
func matches(set *constituency.Set, rep *parse.Report) []store.Match {
	if set.Len() == 0 {
		return nil
	}
	var cands []constituency.Candidate
	add := func(kind vocab.IndicatorKind, vs ...string) {
		for _, v := range vs {
			cands = append(cands, constituency.Candidate{Kind: kind, Value: v})
		}
	}
	addIP := func(ip string) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		if a.Unmap().Is4() {
			add(vocab.IPv4, a.Unmap().String())
		} else {
			add(vocab.IPv6, a.String())
		}
	}
	add(vocab.IPv4, rep.Indicators.IPv4...)
	add(vocab.IPv6, rep.Indicators.IPv6...)
	add(vocab.Domain, rep.Indicators.Domains...)
	add(vocab.URL, rep.Indicators.URLs...)
	add(vocab.Email, rep.Indicators.Emails...)
	var walk func(r *parse.Report, top bool)
	walk = func(r *parse.Report, top bool) {
		if !top && r.OriginatingIP != "" {
			addIP(r.OriginatingIP)
		}
		if r.Structured != nil {
			for _, ip := range r.Structured.SourceIPs {
				addIP(ip)
			}
		}
		for _, fw := range r.Forwarded {
			walk(fw, false)
		}
	}
	walk(rep, true)

	var ex constituency.Exclude
	for _, a := range []string{rep.From, rep.ReplyTo} {
		a = strings.ToLower(a)
		if _, d, ok := strings.Cut(a, "@"); ok {
			ex.Addresses, ex.Domains = append(ex.Addresses, a), append(ex.Domains, d)
		}
	}
	if rep.OriginatingIP != "" {
		ex.IPs = append(ex.IPs, rep.OriginatingIP)
	}
	ex.Sender = rep.From
	var out []store.Match
	for _, m := range set.Match(cands, ex) {
		out = append(out, store.Match{Constituent: m.Constituent, Kind: m.Kind, Value: m.Value})
	}
	return out
}
