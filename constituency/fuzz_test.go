package constituency

import (
	"net/netip"
	"testing"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

// FuzzParse: any constituents file and ASN table gives a Set or an error,
// never a panic, and a Set answers Match for any candidate.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample), []byte(table), "192.0.2.9")
	f.Add([]byte("constituents: [{id: a, notify: never, networks: ['::ffff:1.2.3.0/120']}]"), []byte("1.2.3.0\t1.2.3.9\t7\n"), "1.2.3.4")
	f.Add([]byte("constituents: {}"), []byte("\t\t\n"), "www.acme.example")
	f.Fuzz(func(t *testing.T, file, tsv []byte, cand string) {
		cs, err := Parse("f.yaml", file)
		if err != nil {
			return
		}
		tab, err := ParseASNTable("f.tsv", tsv)
		if err != nil {
			tab = nil
		}
		s, err := New(cs, tab)
		if err != nil {
			return
		}
		for _, k := range []vocab.IndicatorKind{vocab.IPv4, vocab.IPv6, vocab.Domain, vocab.URL, vocab.Email} {
			for _, m := range s.Match([]Candidate{{k, cand}}, Exclude{}) {
				if _, ok := s.Get(m.Constituent); !ok {
					t.Fatalf("matched unknown constituent %q", m.Constituent)
				}
			}
		}
		if a, err := netip.ParseAddr(cand); err == nil {
			tab.Lookup(a)
		}
	})
}
