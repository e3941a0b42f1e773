package parse

import (
	_ "embed"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed rules.yaml
var builtinRules []byte

// Rule is one classification rule.
type Rule struct {
	Name     string   `yaml:"name"`
	Taxonomy string   `yaml:"taxonomy"`
	Type     string   `yaml:"type"`
	Keywords []string `yaml:"keywords"`
	res      []keyword
}

// Rules is a compiled rule set.
type Rules struct {
	list []Rule
	idx  keywordIndex
}

// keywordIndex finds every rule keyword in a text in one pass over its word
// starts: ASCII keywords that begin with a word character are bucketed by
// their first two bytes, so each word of the text costs one map look-up
// instead of one search per keyword. The others (Japanese ones, which have
// no word boundaries, and odd ones) are searched for directly, and only in
// text that is not pure ASCII when they are not ASCII themselves.
type keywordIndex struct {
	all []keyword
	// byPrefix[slot[a<<8|b]-1] lists the keywords that start with the
	// bytes a, b (slot 0: none): a table, not a map, since a look-up is
	// made at every word start of every text.
	slot     []uint16
	byPrefix [][]int
	direct   []int
}

func buildIndex(list []Rule) keywordIndex {
	ix := keywordIndex{slot: make([]uint16, 1<<16)}
	for i := range list {
		for _, kw := range list[i].res {
			n := len(ix.all)
			ix.all = append(ix.all, kw)
			if kw.startBound && len(kw.lower) >= 2 && isWordByte(kw.lower[0]) {
				k := int(kw.lower[0])<<8 | int(kw.lower[1])
				if ix.slot[k] == 0 {
					ix.byPrefix = append(ix.byPrefix, nil)
					ix.slot[k] = uint16(len(ix.byPrefix))
				}
				ix.byPrefix[ix.slot[k]-1] = append(ix.byPrefix[ix.slot[k]-1], n)
			} else {
				ix.direct = append(ix.direct, n)
			}
		}
	}
	return ix
}

// hits marks, by index into all, the keywords found in lower.
func (ix *keywordIndex) hits(lower string, out []bool) {
	for i := 0; i+1 < len(lower); i++ {
		if !isWordByte(lower[i]) || (i > 0 && isWordByte(lower[i-1])) {
			continue
		}
		sl := ix.slot[int(lower[i])<<8|int(lower[i+1])]
		if sl == 0 {
			continue
		}
		for _, n := range ix.byPrefix[sl-1] {
			kw := ix.all[n]
			end := i + len(kw.lower)
			if !out[n] && strings.HasPrefix(lower[i:], kw.lower) && (!kw.endBound || end == len(lower) || !isWordByte(lower[end])) {
				out[n] = true
			}
		}
	}
	ascii := isASCIIString(lower)
	for _, n := range ix.direct {
		kw := ix.all[n]
		if ascii && !isASCIIString(kw.lower) {
			continue
		}
		out[n] = out[n] || kw.in(lower)
	}
}

// hitsASCII is hits for a text that is all ASCII, taken as it is, not
// lower-cased: letters are folded as they are compared, which spares a
// copy of the whole text per message. For ASCII, strings.ToLower is
// exactly this folding, so the hits are the same (FuzzKeywordHitsASCII).
func (ix *keywordIndex) hitsASCII(text string, out []bool) {
	for i := 0; i+1 < len(text); {
		if !wordByte[text[i]] {
			i++
			continue
		}
		start := i // a word starts here; the next look is after it
		for i++; i < len(text) && wordByte[text[i]]; i++ {
		}
		sl := ix.slot[int(lowerASCII(text[start]))<<8|int(lowerASCII(text[start+1]))]
		if sl == 0 {
			continue
		}
		for _, n := range ix.byPrefix[sl-1] {
			kw := ix.all[n]
			end := start + len(kw.lower)
			if !out[n] && end <= len(text) && equalFoldASCII(text[start:end], kw.lower) && (!kw.endBound || end == len(text) || !wordByte[text[end]]) {
				out[n] = true
			}
		}
	}
	lower, lowered := "", false
	for _, n := range ix.direct {
		kw := ix.all[n]
		if !isASCIIString(kw.lower) {
			continue // cannot occur in ASCII text
		}
		if !lowered {
			lower, lowered = strings.ToLower(text), true
		}
		out[n] = out[n] || kw.in(lower)
	}
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// textHits marks the keywords found in the pieces joined by newlines (at
// most 256 KiB of them).
func (ix *keywordIndex) textHits(pieces []string) []bool {
	out := make([]bool, len(ix.all))
	total, ascii := len(pieces)-1, true
	for _, pc := range pieces {
		total += len(pc)
		ascii = ascii && isASCIIString(pc)
	}
	if ascii && total <= 256<<10 {
		for _, pc := range pieces {
			ix.hitsASCII(pc, out)
		}
		return out
	}
	return ix.textHitsJoined(pieces)
}

// textHitsJoined is textHits the plain way: join, cut, lower-case, search.
func (ix *keywordIndex) textHitsJoined(pieces []string) []bool {
	out := make([]bool, len(ix.all))
	text := strings.Join(pieces, "\n")
	if len(text) > 256<<10 {
		text = text[:256<<10]
	}
	ix.hits(strings.ToLower(text), out)
	return out
}

// LoadRules compiles the built-in rules extended by extra (YAML in the same
// format; a rule with a built-in name replaces it). extra may be nil.
func LoadRules(extra []byte) (*Rules, error) {
	var base struct {
		Rules []Rule `yaml:"rules"`
	}
	if err := yaml.Unmarshal(builtinRules, &base); err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		var ext struct {
			Rules []Rule `yaml:"rules"`
		}
		dec := yaml.NewDecoder(strings.NewReader(string(extra)))
		dec.KnownFields(true)
		if err := dec.Decode(&ext); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		for _, r := range ext.Rules {
			replaced := false
			for i := range base.Rules {
				if base.Rules[i].Name == r.Name {
					base.Rules[i], replaced = r, true
				}
			}
			if !replaced {
				base.Rules = append(base.Rules, r)
			}
		}
	}
	for i := range base.Rules {
		r := &base.Rules[i]
		if r.Taxonomy == "" || r.Type == "" {
			return nil, fmt.Errorf("rules: rule %q needs taxonomy and type", r.Name)
		}
		for _, k := range r.Keywords {
			if strings.ContainsAny(k, "\r\n") {
				return nil, fmt.Errorf("rules: rule %q: a keyword cannot hold a line break", r.Name)
			}
			r.res = append(r.res, newKeyword(k))
		}
	}
	return &Rules{list: base.Rules, idx: buildIndex(base.Rules)}, nil
}

// keyword is one rule keyword, matched case-insensitively in text that is
// lower-cased once per message (a regular expression per keyword made
// classification the slowest step of parsing). An ASCII keyword must start
// at a word boundary, and a short or plural one must end at one too, so
// "dos" does not match "windows" and "leak" still matches "leaked".
type keyword struct {
	lower      string
	startBound bool
	endBound   bool
}

func newKeyword(k string) keyword {
	kw := keyword{lower: strings.ToLower(k)}
	if isASCIIString(k) {
		kw.startBound = true
		kw.endBound = len(k) <= 3 || strings.HasSuffix(k, "s")
	}
	return kw
}

// wordByte is isWordByte as a table.
var wordByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isWordByte(byte(c))
	}
	return t
}()

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// in reports whether the keyword occurs in lower (already lower-cased).
func (k keyword) in(lower string) bool {
	if k.lower == "" {
		return false
	}
	for off := 0; off <= len(lower); {
		i := strings.Index(lower[off:], k.lower)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(k.lower)
		if (!k.startBound || i == 0 || !isWordByte(lower[i-1])) && (!k.endBound || end == len(lower) || !isWordByte(lower[end])) {
			return true
		}
		off = i + 1
	}
	return false
}

var defaultRules = func() *Rules {
	r, err := LoadRules(nil)
	if err != nil {
		panic(err)
	}
	return r
}()

// DefaultRules returns the built-in rules.
func DefaultRules() *Rules { return defaultRules }

// classify picks the RSIT class: structured reports first, then rules.
func (p *parser) classify(rep *Report) Classification {
	if s := rep.Structured; s != nil {
		if c, ok := structuredClass(s); ok {
			return c
		}
	}
	rules := p.opt.Rules
	if rules == nil {
		rules = defaultRules
	}
	// The text the rules read: the report's, the forwarded subjects and a
	// structured report's description, joined by newlines, at most 256
	// KiB. When it is all ASCII and short enough, its pieces are read one
	// by one instead of joined: no keyword holds a newline (LoadRules
	// makes sure), so none can match across the join, and the copy of the
	// whole text per message is spared.
	pieces := []string{rep.Text}
	for _, fw := range rep.Forwarded {
		pieces = append(pieces, fw.Subject)
	}
	if s := rep.Structured; s != nil {
		pieces = append(pieces, s.Fields["description"])
	}
	subj := strings.ToLower(rep.Subject)
	inSubj := make([]bool, len(rules.idx.all))
	rules.idx.hits(subj, inSubj)
	inText := rules.idx.textHits(pieces)
	best, bestScore := -1, 0
	n := 0
	for i, r := range rules.list {
		score := 0
		for range r.res {
			if inSubj[n] {
				score += 3
			}
			if inText[n] {
				score++
			}
			n++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		if len(rep.Forwarded) > 0 && len(rep.Indicators.URLs) > 0 {
			// Staff forwarding a mail with links is most often phishing.
			return Classification{Taxonomy: "fraud", Type: "phishing", Confidence: 0.3, Rule: "forwarded-with-links"}
		}
		return Classification{Taxonomy: "other", Type: "undetermined", Confidence: 0.1}
	}
	r := rules.list[best]
	conf := 0.4 + 0.1*float64(bestScore)
	if conf > 0.9 {
		conf = 0.9
	}
	return Classification{Taxonomy: r.Taxonomy, Type: r.Type, Confidence: conf, Rule: r.Name}
}

func structuredClass(s *Structured) (Classification, bool) {
	c := func(tax, typ string) (Classification, bool) {
		return Classification{Taxonomy: tax, Type: typ, Confidence: 0.95, Rule: s.Format}, true
	}
	switch s.Format {
	case "arf":
		switch strings.ToLower(s.Fields["feedback-type"]) {
		case "abuse", "":
			return c("abusive-content", "spam")
		case "fraud":
			return c("fraud", "phishing")
		case "virus":
			return c("malicious-code", "infected-system")
		}
	case "x-arf":
		rt := strings.ToLower(s.Fields["report-type"])
		switch {
		case strings.Contains(rt, "login"), strings.Contains(rt, "brute"):
			return c("intrusion-attempts", "brute-force")
		case strings.Contains(rt, "spam"):
			return c("abusive-content", "spam")
		case strings.Contains(rt, "phish"):
			return c("fraud", "phishing")
		case strings.Contains(rt, "ddos"):
			return c("availability", "ddos")
		case strings.Contains(rt, "portscan"), strings.Contains(rt, "scan"):
			return c("information-gathering", "scanning")
		case strings.Contains(rt, "malware"):
			return c("malicious-code", "infected-system")
		}
	}
	return Classification{}, false
}
