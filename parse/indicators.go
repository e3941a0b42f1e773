package parse

import (
	"encoding/hex"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

func emptyIndicators() Indicators {
	return Indicators{IPv4: []string{}, IPv6: []string{}, Domains: []string{}, URLs: []string{}, Emails: []string{},
		MD5: []string{}, SHA1: []string{}, SHA256: []string{}, CVEs: []string{}}
}

var refanger = strings.NewReplacer(
	"hxxps://", "https://", "hxxp://", "http://", "HXXPS://", "https://", "HXXP://", "http://",
	"hXXps://", "https://", "hXXp://", "http://", "fxp://", "ftp://",
	"[://]", "://", "[:]//", "://", "[:]", ":",
	"[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "(dot)", ".", "{dot}", ".", " [dot] ", ".", " (dot) ", ".",
	"[DOT]", ".", "[@]", "@", "(@)", "@", "{@}", "@", "[at]", "@", "(at)", "@", " [at] ", "@", " (at) ", "@", "[AT]", "@",
)

// Refang undoes the usual defanging of indicators.
func Refang(s string) string {
	// Text without a defanging, most of it, is returned as it is without
	// a pass of the replacer (which would return it unchanged).
	if !mayBeDefanged(s) {
		return s
	}
	return refanger.Replace(s)
}

// mayBeDefanged reports whether s may hold one of refanger's patterns: a
// bracket followed by what the patterns put in brackets (". : @ d D a A"),
// "xxp" in any case, or "fxp". One pass, no search per pattern; prose has
// brackets and "xp" (expected, explain) often enough that a looser check
// sent a third of all lines through the replacer.
func mayBeDefanged(s string) bool {
	// Brackets and x are rare in prose: finding each with IndexByte, which
	// scans many bytes at a time, beats looking at every byte.
	for _, c := range [...]byte{'[', '(', '{', 'x', 'X'} {
		for off := 0; off < len(s); {
			i := strings.IndexByte(s[off:], c)
			if i < 0 {
				break
			}
			i += off
			if defangedAt(s, i) {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// defangedAt reports whether one of mayBeDefanged's marks starts at s[i].
func defangedAt(s string, i int) bool {
	if i+1 >= len(s) {
		return false
	}
	switch s[i] {
	case '[', '(', '{':
		switch s[i+1] {
		case '.', ':', '@', 'd', 'D', 'a', 'A':
			return true
		}
	case 'x', 'X':
		if i+2 < len(s) && s[i+1]|0x20 == 'x' && s[i+2]|0x20 == 'p' {
			return true
		}
		if i > 0 && s[i-1] == 'f' && s[i+1] == 'p' {
			return true
		}
	}
	return false
}

var (
	urlRE    = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s<>"'` + "`" + `\x{3000}-\x{30FF}\x{FF00}-\x{FFEF}\x{4E00}-\x{9FFF}\\^|{}]+`)
	emailRE  = regexp.MustCompile(`(?i)\b[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b`)
	ipv4RE   = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?`)
	ipv6RE   = regexp.MustCompile(`(?i)[0-9a-f:]*:[0-9a-f:]*:[0-9a-f:.]*(?:/\d{1,3})?`)
	hexRE    = regexp.MustCompile(`(?i)\b[0-9a-f]{32,64}\b`)
	cveRE    = regexp.MustCompile(`(?i)\bCVE-\d{4}-\d{4,7}\b`)
	domainRE = regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]\b`)
)

// reservedTLDs are accepted although not in the ICANN section: RFC 2606 and
// RFC 6761 names that test data, labs and internal networks use.
var reservedTLDs = map[string]bool{"example": true, "test": true, "invalid": true, "localhost": true, "onion": true, "internal": true, "local": true, "lan": true, "corp": true, "home": true, "arpa": false}

// fileTLDs are TLDs that are far more often file extensions in reports.
var fileTLDs = map[string]bool{"zip": true, "mov": true, "py": true, "sh": true, "md": true, "exe": true, "dll": true, "ps": true}

// validDomain checks the name's TLD against the public suffix list.
func validDomain(d string) bool {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	tld := labels[len(labels)-1]
	if fileTLDs[tld] {
		return false
	}
	if !reservedTLDs[tld] {
		if _, icann := publicsuffix.PublicSuffix(tld); !icann {
			return false
		}
	}
	suffix, _ := publicsuffix.PublicSuffix(d)
	return suffix != d
}

// collector de-duplicates indicators in order of appearance and applies the
// team's exclusions.
type collector struct {
	opt  *Options
	ind  Indicators
	seen map[string]bool
	// memo, shared by the collectors of one Parse call, holds what each
	// line scanned gave, so a line met again (the text of an inline forward
	// is scanned for the forward and again for the whole report) is
	// replayed instead of scanned.
	memo      map[string][]found
	recording bool
	rec       []found
	// n counts the indicators kept; past opt.Limits.MaxIndicators the
	// rest are only counted (omitted), so that one report naming a
	// million addresses files a bounded number of rows.
	n, omitted int
}

// found is one value a line gave, of a kind add takes or vocab.CIDR.
type found struct {
	kind vocab.IndicatorKind
	v    string
}

// maxMemoLines bounds the memo of one message.
const maxMemoLines = 20000

func newCollector(opt *Options) *collector {
	return &collector{opt: opt, ind: emptyIndicators(), seen: map[string]bool{}}
}

func (c *collector) ownDomain(d string) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, o := range c.opt.OwnDomains {
		if d == o {
			return true
		}
	}
	return false
}

func (c *collector) ownAddress(a string) bool {
	for _, o := range c.opt.OwnAddresses {
		if strings.EqualFold(a, o) {
			return true
		}
	}
	return false
}

func (c *collector) add(kind vocab.IndicatorKind, v string) {
	if c.recording {
		c.rec = append(c.rec, found{kind, v})
	}
	if v == "" || c.seen[string(kind)+"\x00"+v] {
		return
	}
	if limit := c.opt.Limits.MaxIndicators; limit > 0 && c.n >= limit {
		c.omitted++
		return
	}
	c.seen[string(kind)+"\x00"+v] = true
	c.n++
	switch kind {
	case vocab.IPv4:
		c.ind.IPv4 = append(c.ind.IPv4, v)
	case vocab.IPv6:
		c.ind.IPv6 = append(c.ind.IPv6, v)
	case vocab.Domain:
		if c.ownDomain(v) || !validDomain(v) {
			return
		}
		c.ind.Domains = append(c.ind.Domains, v)
	case vocab.URL:
		c.ind.URLs = append(c.ind.URLs, v)
	case vocab.Email:
		if c.ownAddress(v) {
			return
		}
		c.ind.Emails = append(c.ind.Emails, v)
	case vocab.MD5:
		c.ind.MD5 = append(c.ind.MD5, v)
	case vocab.SHA1:
		c.ind.SHA1 = append(c.ind.SHA1, v)
	case vocab.SHA256:
		c.ind.SHA256 = append(c.ind.SHA256, v)
	case vocab.CVE:
		c.ind.CVEs = append(c.ind.CVEs, v)
	}
}

func (c *collector) addIP(s string) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4() {
				c.add(vocab.IPv4, p.Masked().String())
			} else {
				c.add(vocab.IPv6, p.Masked().String())
			}
			c.ind.CIDRs = appendUnique(c.ind.CIDRs, p.Masked().String())
			if c.recording {
				c.rec = append(c.rec, found{vocab.CIDR, p.Masked().String()})
			}
		}
		return
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return
	}
	if a.Is4() || a.Is4In6() {
		c.add(vocab.IPv4, a.Unmap().String())
	} else {
		c.add(vocab.IPv6, a.String())
	}
}

func appendUnique(l []string, v string) []string {
	for _, x := range l {
		if x == v {
			return l
		}
	}
	return append(l, v)
}

var trailingPunct = ".,;:!?)]}>'\"*"

func trimURL(u string) string {
	for {
		t := strings.TrimRight(u, trailingPunct)
		// keep a closing paren that balances one in the URL
		if strings.HasSuffix(u, ")") && strings.Count(u, "(") >= strings.Count(u, ")") {
			t = u
		}
		if t == u {
			return u
		}
		u = t
	}
}

// normalizeURL lower-cases scheme and host and checks the host.
func (c *collector) addURL(raw string) (host string) {
	u := trimURL(raw)
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	scheme := strings.ToLower(u[:i])
	rest := u[i+3:]
	end := strings.IndexAny(rest, "/?#")
	hostport := rest
	path := ""
	if end >= 0 {
		hostport, path = rest[:end], rest[end:]
	}
	if at := strings.LastIndex(hostport, "@"); at >= 0 {
		hostport = hostport[at+1:]
	}
	host = strings.ToLower(hostport)
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil && !validDomain(host) {
		return ""
	}
	if c.ownDomain(host) {
		return ""
	}
	if path == "" {
		path = "/"
	}
	c.add(vocab.URL, scheme+"://"+strings.ToLower(hostport)+path)
	return host
}

// namespaceURL reports URLs that are format constants, not indicators.
func namespaceURL(line, u string) bool {
	l := strings.ToLower(line)
	if strings.Contains(l, "xmlns") || strings.Contains(l, "schema-url") || strings.Contains(l, "schemalocation") {
		return true
	}
	lu := strings.ToLower(u)
	for _, p := range []string{"http://www.w3.org/", "http://schemas.microsoft.com/", "http://schemas.xmlsoap.org/", "http://www.x-arf.org/schema", "urn:ietf:params:xml"} {
		if strings.HasPrefix(lu, p) {
			return true
		}
	}
	return false
}

// scan extracts every indicator from text, line by line.
func (c *collector) scan(text string) {
	for _, line := range strings.Split(text, "\n") {
		// Indicators live in ordinary lines; a giant one (a base64 blob
		// read as text) is scanned in its first 16 KiB only, so hostile
		// input costs bounded time.
		if len(line) > 16<<10 {
			line = line[:16<<10]
		}
		c.scanLineMemo(line)
	}
}

func (c *collector) scanLineMemo(line string) {
	if c.memo == nil {
		c.scanLine(Refang(line))
		return
	}
	if got, ok := c.memo[line]; ok {
		for _, f := range got {
			if f.kind == vocab.CIDR {
				c.ind.CIDRs = appendUnique(c.ind.CIDRs, f.v)
			} else {
				c.add(f.kind, f.v)
			}
		}
		return
	}
	c.recording, c.rec = true, c.rec[:0]
	c.scanLine(Refang(line))
	c.recording = false
	if len(c.memo) < maxMemoLines {
		c.memo[line] = append([]found(nil), c.rec...)
	}
}

func (c *collector) scanLine(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	// Each pattern runs only on lines that hold the character it cannot
	// match without: most lines of a report hold no indicator at all, and
	// a regular expression over every line was most of parsing's cost.
	rest := line
	var urls []string
	if strings.Contains(line, "://") {
		urls = findURLs(line)
	}
	for _, u := range urls {
		u = trimURL(u)
		if namespaceURL(line, u) {
			rest = strings.Replace(rest, u, " ", 1)
			continue
		}
		if host := c.addURL(u); host != "" {
			if _, err := netip.ParseAddr(host); err != nil {
				c.add(vocab.Domain, host)
			}
		}
		// keep the IPs in URLs for the IP scan below; blank the rest
		rest = strings.Replace(rest, u, " "+hostOnlyIP(u)+" ", 1)
	}
	var emails []string
	if strings.IndexByte(rest, '@') >= 0 {
		emails = emailRE.FindAllString(rest, -1)
	}
	for _, e := range emails {
		e = strings.ToLower(strings.Trim(e, "."))
		c.add(vocab.Email, e)
		if !c.ownAddress(e) {
			c.add(vocab.Domain, e[strings.LastIndex(e, "@")+1:])
		}
		rest = strings.Replace(rest, e, " ", 1)
	}
	hasDot := strings.IndexByte(rest, '.') >= 0
	var v4 [][]int
	if hasDot && strings.Count(rest, ".") >= 3 {
		v4 = findIPv4(rest)
	}
	for _, m := range v4 {
		s := rest[m[0]:m[1]]
		// not part of a longer dotted number (OIDs, versions)
		if m[0] > 0 && (rest[m[0]-1] == '.' || isDigit(rest[m[0]-1])) {
			continue
		}
		if m[1] < len(rest) && rest[m[1]] == '.' && m[1]+1 < len(rest) && isDigit(rest[m[1]+1]) {
			continue
		}
		c.addIP(s)
	}
	var v6 []string
	if strings.Count(rest, ":") >= 2 {
		v6 = ipv6RE.FindAllString(rest, -1)
	}
	for _, s := range v6 {
		s = strings.Trim(s, ":.")
		if strings.Count(s, ":") < 2 {
			continue
		}
		if !strings.Contains(s, "::") && strings.Count(s, ":") < 7 {
			continue
		}
		if strings.HasPrefix(s, ":") && !strings.HasPrefix(s, "::") {
			continue
		}
		c.addIP(s)
	}
	var hexes []string
	if hasHexRun(rest, 32) {
		hexes = hexRE.FindAllString(rest, -1)
	}
	fprLine := len(hexes) > 0 && fingerprintContext(line)
	for _, h := range hexes {
		h = strings.ToLower(h)
		switch len(h) {
		case 32:
			c.add(vocab.MD5, h)
		case 40:
			if !fprLine {
				c.add(vocab.SHA1, h)
			}
		case 64:
			c.add(vocab.SHA256, h)
		}
	}
	var cves []string
	if strings.IndexByte(rest, '-') >= 0 && containsFoldASCII(rest, "cve-") {
		cves = cveRE.FindAllString(rest, -1)
	}
	for _, cv := range cves {
		c.add(vocab.CVE, strings.ToUpper(cv))
	}
	if !hasDot {
		return
	}
	for _, m := range findInRuns(rest, domainRE, &domainRunBytes, hasDomainShape) {
		d := rest[m[0]:m[1]]
		if looksLikeFilename(rest, d) {
			continue
		}
		c.add(vocab.Domain, strings.ToLower(d))
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// findURLs is urlRE.FindAllString(s, -1) without the regexp engine: at each
// "://", a scheme (http, https or ftp in any case, with the long s that
// (?i) lets stand for s) that starts at a word boundary, then at least one
// byte of the body, which runs to the first excluded character. FuzzFindURLs
// holds it to the regexp.
func findURLs(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		j += i
		start := urlSchemeStart(s, i, j)
		if start < 0 {
			i = j + 1
			continue
		}
		k := j + 3
		for k < len(s) {
			r, w := rune(s[k]), 1
			if r >= utf8.RuneSelf {
				r, w = utf8.DecodeRuneInString(s[k:])
			}
			if urlExcluded(r) {
				break
			}
			k += w
		}
		if k == j+3 {
			i = j + 1
			continue
		}
		out = append(out, s[start:k])
		i = k
	}
	return out
}

// urlSchemeStart returns where the scheme that ends at j starts, at or
// after min, or -1.
func urlSchemeStart(s string, min, j int) int {
	start := -1
	switch {
	case j-5 >= min && strings.EqualFold(s[j-5:j], "https"):
		start = j - 5
	case j-6 >= min && strings.EqualFold(s[j-6:j-2], "http") && s[j-2:j] == "\u017f":
		start = j - 6
	case j-4 >= min && strings.EqualFold(s[j-4:j], "http"):
		start = j - 4
	case j-3 >= min && strings.EqualFold(s[j-3:j], "ftp"):
		start = j - 3
	default:
		return -1
	}
	if start > 0 && isWordByte(s[start-1]) {
		return -1 // no \b before the scheme
	}
	return start
}

// urlExcluded is the negated class of urlRE's body.
func urlExcluded(r rune) bool {
	switch r {
	case '\t', '\n', '\f', '\r', ' ', '<', '>', '"', '\'', '`', '\\', '^', '|', '{', '}':
		return true
	}
	return r >= 0x3000 && r <= 0x30FF || r >= 0xFF00 && r <= 0xFFEF || r >= 0x4E00 && r <= 0x9FFF
}

// findInRuns is re.FindAllStringIndex(s, -1) for a pattern that matches only
// bytes for which inRun holds, run over each maximal run of such bytes alone
// and only where shape says a match is possible. It gives the same matches:
// a run ends at an ASCII byte that is neither a word character nor one the
// pattern can match, so a match cannot cross it and \b sees the same on
// both sides of it as at the start or end of text. (Non-ASCII bytes stay in
// the runs: (?i) lets k and s match the Kelvin and long-s signs.) On a long
// line the backtracking matcher then works on a few short words instead of
// the whole line, which was most of the time parse spent on plain text.
func findInRuns(s string, re *regexp.Regexp, inRun *[256]bool, shape func(string) bool) [][]int {
	var out [][]int
	for i := 0; i < len(s); {
		if !inRun[s[i]] {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && inRun[s[j]] {
			j++
		}
		if run := s[i:j]; shape(run) {
			for _, m := range re.FindAllStringIndex(run, -1) {
				out = append(out, []int{i + m[0], i + m[1]})
			}
		}
		i = j
	}
	return out
}

// domainRunBytes: word characters (for \b), the '.' and '-' of host names,
// and non-ASCII bytes.
var domainRunBytes = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isWordByte(byte(c)) || c == '.' || c == '-' || c >= 0x80
	}
	return t
}()

// findIPv4 is ipv4RE.FindAllStringIndex(s, -1) without the regexp engine:
// \b, one to three digits and a dot three times, one to three digits, and
// an optional "/" with one or two digits. A run of more than three digits
// before a dot cannot match (the backtracker finds no dot after fewer), and
// \b before a digit means the byte before is no word character.
// FuzzFindInRuns holds it to the regexp.
func findIPv4(s string) [][]int {
	var out [][]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) || i > 0 && isWordByte(s[i-1]) {
			i++
			continue
		}
		if end := matchIPv4At(s, i); end > 0 {
			out = append(out, []int{i, end})
			i = end
			continue
		}
		i++
	}
	return out
}

// matchIPv4At returns the end of the dotted quad starting at i, or 0.
func matchIPv4At(s string, i int) int {
	j := i
	for octet := 0; octet < 4; octet++ {
		k := j
		for k < len(s) && k-j < 3 && isDigit(s[k]) {
			k++
		}
		if k == j {
			return 0
		}
		if octet < 3 {
			if k >= len(s) || s[k] != '.' {
				return 0
			}
			k++
		}
		j = k
	}
	if j+1 < len(s) && s[j] == '/' && isDigit(s[j+1]) {
		j += 2
		if j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	return j
}

// hasDomainShape: a domain needs a label's last character, a dot and a
// letter (or a byte that may fold to one) that starts the top-level label.
func hasDomainShape(run string) bool {
	for k := 1; k+1 < len(run); k++ {
		if run[k] == '.' && run[k-1] != '.' && run[k-1] != '-' {
			if c := run[k+1] | 0x20; c >= 'a' && c <= 'z' || run[k+1] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// indexFoldASCII is the index of the first instance of lower (ASCII,
// lower-case) in s in any letter case, or -1.
func indexFoldASCII(s, lower string) int {
	for i := 0; i+len(lower) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(lower)], lower) {
			return i
		}
	}
	return -1
}

// containsFoldASCII reports whether s holds lower (ASCII, lower-case) in
// any letter case, without allocating.
//
// It looks for the needle's rarest byte (by English letter frequency) in
// both cases with strings.IndexByte, which scans many bytes at a time, and
// compares around each hit: a byte-by-byte fold over a 20 KiB text for
// "tlp" was 8 % of parsing.
func containsFoldASCII(s, lower string) bool {
	n := len(lower)
	if n == 0 {
		return true
	}
	if len(s) < n {
		return false
	}
	k := rarestByte(lower)
	lo, up := lower[k], lower[k]
	if lo >= 'a' && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	// hits of s[start+k] for a match starting at start lie in [k, end)
	end := len(s) - (n - 1 - k)
	nextLo, nextUp := -1, -1 // cached next positions (absolute), -2: none left
	for i := k; i < end; {
		if nextLo != -2 && nextLo < i {
			if j := strings.IndexByte(s[i:end], lo); j >= 0 {
				nextLo = i + j
			} else {
				nextLo = -2
			}
		}
		if up == lo {
			nextUp = -2
		} else if nextUp != -2 && nextUp < i {
			if j := strings.IndexByte(s[i:end], up); j >= 0 {
				nextUp = i + j
			} else {
				nextUp = -2
			}
		}
		var p int
		switch {
		case nextLo == -2 && nextUp == -2:
			return false
		case nextLo == -2:
			p = nextUp
		case nextUp == -2:
			p = nextLo
		default:
			p = min(nextLo, nextUp)
		}
		if equalFoldASCII(s[p-k:p-k+n], lower) {
			return true
		}
		i = p + 1
	}
	return false
}

// equalFoldASCII reports whether t equals lower (ASCII, lower-case) but
// for the case of its letters.
func equalFoldASCII(t, lower string) bool {
	for j := 0; j < len(lower); j++ {
		c := t[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return true
}

// letterFrequency orders the letters from the most to the least frequent
// in English text.
const letterFrequency = "etaoinshrdlcumwfgypbvkjxqz"

// rarestByte returns the index of lower's byte least likely in a text:
// a letter late in letterFrequency, or any other byte but a space or a
// digit (which are common).
func rarestByte(lower string) int {
	best, bestRank := 0, -1
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		rank := 10 // punctuation and the like: rarer than most letters
		switch {
		case c >= 'a' && c <= 'z':
			rank = strings.IndexByte(letterFrequency, c)
		case c == ' ' || c >= '0' && c <= '9':
			rank = -1
		}
		if rank > bestRank {
			best, bestRank = i, rank
		}
	}
	return best
}

// fingerprintContext reports whether a line speaks of OpenPGP keys, where a
// 40-digit hex string is a key fingerprint, not a SHA-1 indicator.
func fingerprintContext(line string) bool {
	for _, w := range []string{"fingerprint", "pgp", "gpg", "keyid", "key id", "fpr"} {
		if containsFoldASCII(line, w) {
			return true
		}
	}
	return strings.Contains(line, "鍵")
}

// hasHexRun reports whether s holds n hex digits in a row.
func hasHexRun(s string, n int) bool {
	if n < 1 {
		return true
	}
	// Probe the last byte of the earliest run that could still fit: if it
	// is not a hex digit, no run of n covers it, and the next n bytes need
	// no look. Prose is full of a-f, so this is what keeps the check cheap.
	for i := n - 1; i < len(s); {
		if !isHexDigit[s[i]] {
			i += n
			continue
		}
		j := i // the run through i starts at j
		for j > 0 && isHexDigit[s[j-1]] && i-j+1 < n {
			j--
		}
		k := i + 1 // and ends before k
		for k < len(s) && k-j < n && isHexDigit[s[k]] {
			k++
		}
		if k-j >= n {
			return true
		}
		i = k + n // s[k] is not a hex digit: a run starts after it
	}
	return false
}

var isHexDigit = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()

func hostOnlyIP(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	h := u[i+3:]
	if j := strings.IndexAny(h, "/?#"); j >= 0 {
		h = h[:j]
	}
	h = strings.Trim(h, "[]")
	if j := strings.LastIndex(h, ":"); j >= 0 && strings.Count(h, ":") == 1 {
		h = h[:j]
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return h
	}
	return ""
}

// looksLikeFilename: a name directly followed by a path separator or
// preceded by one is part of a path, not a domain.
func looksLikeFilename(line, d string) bool {
	i := strings.Index(line, d)
	if i < 0 {
		return false
	}
	if i > 0 && (line[i-1] == '/' || line[i-1] == '\\' || line[i-1] == '-' || line[i-1] == '_') {
		return true
	}
	return false
}

// hexFromBase64 turns a base64 digest into hex (IODEF ds:DigestValue).
func hexFromBase64(s string) string {
	b, err := b64.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}
