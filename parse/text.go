package parse

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/net/html"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

// htmlBlock are the elements that start and end on a line of their own.
var htmlBlock = map[string]bool{
	"address": true, "article": true, "aside": true, "blockquote": true, "caption": true, "center": true, "dd": true,
	"div": true, "dl": true, "dt": true, "fieldset": true, "figcaption": true, "figure": true, "footer": true, "form": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "header": true, "hr": true, "li": true,
	"main": true, "nav": true, "ol": true, "p": true, "pre": true, "section": true, "table": true, "tbody": true,
	"tfoot": true, "thead": true, "tr": true, "ul": true,
}

// htmlToText renders HTML as plain text: text nodes, line breaks at block
// elements and <br>, table cells apart by a tab (web forms and Outlook lay
// out "Affected host | 192.0.2.201" as cells, and the words must not run
// together), link targets kept beside their text; script, style and head
// dropped. XML namespace attributes never reach the text.
func htmlToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return strings.TrimSpace(collapseBlank(b.String()))
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			switch tag {
			case "script", "style", "head", "title", "xml":
				if tt == html.StartTagToken {
					skip++
				}
			case "br":
				b.WriteString("\n")
			case "td", "th":
				b.WriteString("\t")
			case "a":
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					if string(k) == "href" && (strings.HasPrefix(string(v), "http") || strings.HasPrefix(string(v), "hxxp")) {
						b.WriteString(" " + string(v) + " ")
					}
				}
			default:
				if htmlBlock[tag] {
					b.WriteString("\n")
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title", "xml":
				if skip > 0 {
					skip--
				}
			case "td", "th":
				b.WriteString("\t")
			default:
				if htmlBlock[string(name)] {
					b.WriteString("\n")
				}
			}
		case html.TextToken:
			if skip == 0 {
				// &nbsp; separates words as a space does.
				b.WriteString(strings.ReplaceAll(string(z.Text()), "\u00a0", " "))
			}
		}
	}
}

var blankRunRE = regexp.MustCompile(`\n[ \t\r]*\n(?:[ \t\r]*\n)+`)

func collapseBlank(s string) string { return blankRunRE.ReplaceAllString(s, "\n\n") }

// languageWords are common short words per language, for telling Latin-script
// languages apart.
var languageWords = map[string][]string{
	"en": {"the", "and", "is", "of", "to", "we", "you", "your", "our", "this", "that", "with", "for", "from", "please", "have"},
	"de": {"der", "die", "das", "und", "ist", "ich", "nicht", "mit", "eine", "ein", "wir", "sie", "von", "auf", "für", "bitte", "hallo", "habe"},
	"fr": {"le", "la", "les", "et", "est", "nous", "vous", "une", "des", "pour", "dans", "avec", "bonjour", "merci"},
	"es": {"el", "la", "los", "las", "y", "es", "una", "para", "con", "por", "hola", "gracias", "que"},
	"nl": {"de", "het", "een", "en", "is", "niet", "wij", "jullie", "van", "met", "voor", "graag"},
	"it": {"il", "lo", "gli", "e", "di", "che", "una", "per", "con", "sono", "grazie", "buongiorno"},
	"pt": {"o", "os", "as", "e", "um", "uma", "para", "com", "não", "obrigado", "olá"},
}

// languageOrder is the order ties between word counts are broken in.
var languageOrder = []string{"en", "de", "fr", "es", "nl", "it", "pt"}

// languageOfWord maps each of those words to the languages that use it, as
// indexes into languageOrder.
var languageOfWord = func() map[string][]int {
	m := map[string][]int{}
	for i, lang := range languageOrder {
		for _, w := range languageWords[lang] {
			m[w] = append(m[w], i)
		}
	}
	return m
}()

// languageOf is detectLanguage of subject and text joined by a newline,
// without joining them (a copy of up to 8 KiB per call).
func languageOf(subject, text string) string {
	return detectLanguageParts(subject, "\n", text)
}

// detectLanguage returns a BCP 47 primary tag from the script and common
// words of the text, "" when there is no text.
func detectLanguage(s string) string { return detectLanguageParts(s) }

// detectLanguageParts is detectLanguage of the parts' concatenation when
// the parts meet at non-letters (languageOf puts a newline between): a
// part's end ends a word.
func detectLanguageParts(in ...string) string {
	// The first 8 KiB tell the language as well as the whole would.
	parts := make([]string, 0, len(in))
	budget := 8 << 10
	for _, p := range in {
		if len(p) > budget {
			p = p[:budget]
		}
		budget -= len(p)
		parts = append(parts, p)
	}
	var kana, han, hangul, cyr, latin int
	for _, s := range parts {
		// ASCII first, byte by byte: most reports are ASCII to the end.
		ascii := 0
		for ; ascii < len(s) && s[ascii] < 0x80; ascii++ {
			if c := s[ascii] | 0x20; c >= 'a' && c <= 'z' {
				latin++
			}
		}
		for _, r := range s[ascii:] {
			if r < 0x80 {
				if r|0x20 >= 'a' && r|0x20 <= 'z' {
					latin++
				}
				continue
			}
			switch {
			case unicode.In(r, unicode.Hiragana, unicode.Katakana):
				kana++
			case unicode.Is(unicode.Han, r):
				han++
			case unicode.Is(unicode.Hangul, r):
				hangul++
			case unicode.Is(unicode.Cyrillic, r):
				cyr++
			case unicode.IsLetter(r) && r < 0x250:
				latin++
			}
		}
	}
	switch {
	case kana > 0 && kana+han >= 4:
		return "ja"
	case hangul > 4:
		return "ko"
	case han > 4 && han*2 > latin/4:
		return "zh"
	case cyr > 4 && cyr > latin:
		return "ru"
	case latin == 0:
		return ""
	}
	var count [8]int // by index into languageOrder
	words := 0
	var buf [12]byte
	countWord := func(w string) {
		words++
		if len(w) > len(buf) {
			return
		}
		// The listed words are lower-case ASCII: fold into a buffer, and
		// the map look-up of string(buf) does not allocate.
		key := buf[:len(w)]
		for i := 0; i < len(w); i++ {
			c := w[i]
			if c >= 0x80 {
				key = append(buf[:0], strings.ToLower(w)...) // für, Für, FÜR
				break
			}
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		for _, lang := range languageOfWord[string(key)] {
			count[lang]++
		}
	}
	// Words are walked in place (no slice of them): the first 500 are
	// plenty to tell the languages apart. A part's end ends a word (the
	// parts are joined by a newline).
words:
	for _, s := range parts {
		start := -1
		for i, r := range s {
			if r < 0x80 && (r|0x20 >= 'a' && r|0x20 <= 'z') || r >= 0x80 && unicode.IsLetter(r) {
				if start < 0 {
					start = i
				}
				continue
			}
			if start >= 0 {
				countWord(s[start:i])
				start = -1
				if words >= 500 {
					break words
				}
			}
		}
		if start >= 0 {
			countWord(s[start:])
			if words >= 500 {
				break
			}
		}
	}
	best, n := "en", 0
	for i, lang := range languageOrder {
		if count[i] > n {
			best, n = lang, count[i]
		}
	}
	return best
}

// forwardMarkerRE matches the lines mail clients put above an inline forward.
var forwardMarkerRE = regexp.MustCompile(`(?im)^[ \t>]*(?:-{2,}\s*(?:Original Message|Forwarded message|Attached message|Forwarded Message|Message transféré|Weitergeleitete Nachricht|Ursprüngliche Nachricht|転送メッセージ|元のメッセージ|オリジナルメッセージ)\s*-{2,}|Begin forwarded message:|-{5,}\s*Forwarded by .*|-{3,}\s*転送.*-{3,})\s*$`)

var fwdHeaderRE = regexp.MustCompile(`^[ \t>]*\**\s*(From|Sent|Date|To|Cc|Subject|Reply-To|差出人|送信者|送信日時|日時|日付|宛先|件名|Von|Gesendet|An|Betreff|De|Envoyé|Objet|À)\s*\**\s*[:：]\s*\**\s*(.*)$`)

// forwardMarkers returns the positions of up to n forward marker lines.
// Only lines that hold "--" or "Begin forwarded" can be one, so the
// multi-line pattern runs on those lines alone instead of on the text.
func forwardMarkers(text string, n int) [][]int {
	var locs [][]int
	// Only the lines holding "--" or "Begin forwarded" are looked at; both
	// are found by searching the whole rest of the text (the latter's next
	// position kept until passed), not line by line.
	nextBegin := -1 // absolute; -2: none left
	for off := 0; off < len(text) && len(locs) < n; {
		i := strings.Index(text[off:], "--")
		if i >= 0 {
			i += off
		}
		if nextBegin != -2 && nextBegin < off {
			if j := strings.Index(text[off:], "Begin forwarded"); j >= 0 {
				nextBegin = off + j
			} else {
				nextBegin = -2
			}
		}
		if nextBegin >= 0 && (i < 0 || nextBegin < i) {
			i = nextBegin
		}
		if i < 0 {
			break
		}
		start := strings.LastIndexByte(text[:i], '\n') + 1
		if start < off {
			start = off
		}
		end := strings.IndexByte(text[i:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += i
		}
		if m := forwardMarkerRE.FindStringIndex(text[start:end]); m != nil && m[0] == 0 {
			locs = append(locs, []int{start + m[0], start + m[1]})
		}
		off = end + 1
	}
	return locs
}

// rawHeaderRE is any header field line of a pasted header block.
var rawHeaderRE = regexp.MustCompile(`^[ \t>]*([A-Za-z][A-Za-z0-9-]{0,60}):[ \t]*(.*)$`)

// maxForwardReceived bounds the Received fields kept of one inline forward.
const maxForwardReceived = 50

// inlineForwards finds forwarded messages pasted into the text.
func (p *parser) inlineForwards(text string) []*Report {
	var out []*Report
	locs := forwardMarkers(text, 20)
	for i, loc := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		block := text[loc[1]:end]
		fw := newReport()
		lines := strings.Split(block, "\n")
		j := 0
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		headers := 0
		lastReceived := -1
		for ; j < len(lines); j++ {
			l := strings.TrimRight(lines[j], "\r")
			m := fwdHeaderRE.FindStringSubmatch(l)
			if m == nil {
				// A forward with full headers pasted (Thunderbird's "as
				// inline" with all headers, or a copy from "view source")
				// carries Received fields, folded over several lines.
				lq := l
				if strings.HasPrefix(lq, ">") {
					lq = strings.TrimPrefix(strings.TrimLeft(lq, ">"), " ")
				}
				if lastReceived >= 0 && (strings.HasPrefix(lq, " ") || strings.HasPrefix(lq, "\t")) {
					fw.ReceivedChain[lastReceived] += " " + strings.TrimSpace(l)
					continue
				}
				if h := rawHeaderRE.FindStringSubmatch(l); h != nil && (headers > 0 || strings.EqualFold(h[1], "Received") || strings.EqualFold(h[1], "Return-Path")) {
					headers++
					lastReceived = -1
					if strings.EqualFold(h[1], "Received") && len(fw.ReceivedChain) < maxForwardReceived {
						fw.ReceivedChain = append(fw.ReceivedChain, strings.TrimSpace(h[2]))
						lastReceived = len(fw.ReceivedChain) - 1
					}
					continue
				}
				if strings.TrimSpace(l) == "" || headers > 0 {
					break
				}
				continue
			}
			lastReceived = -1
			headers++
			val := strings.TrimSpace(m[2])
			switch strings.ToLower(m[1]) {
			case "from", "差出人", "送信者", "von", "de":
				val = strings.NewReplacer("[mailto:", "<", "]", ">").Replace(val)
				fw.From, fw.FromName = parseAddress(val)
			case "sent", "date", "送信日時", "日時", "日付", "gesendet", "envoyé":
				fw.Date = val
			case "subject", "件名", "betreff", "objet":
				fw.Subject = val
			case "reply-to":
				fw.ReplyTo, _ = parseAddress(val)
			}
		}
		if headers == 0 {
			continue
		}
		fw.OriginatingIP = originatingIP(fw.ReceivedChain)
		fw.Text = strings.TrimSpace(strings.Join(lines[min(j, len(lines)):], "\n"))
		fw.Charset = "utf-8"
		fw.Language = languageOf(fw.Subject, fw.Text)
		fw.Extra = map[string]any{"inline": true}
		c := p.newCollector()
		c.scan(fw.Subject + "\n" + fw.Text)
		if fw.From != "" {
			c.add(vocab.Email, fw.From)
		}
		if fw.ReplyTo != "" {
			c.add(vocab.Email, fw.ReplyTo)
		}
		fw.Indicators = c.ind
		out = append(out, fw)
	}
	return out
}

// stripOwn removes what the reporter did not report: their signature
// block (after a "-- " line) and quoted blocks of our own messages.
func (p *parser) stripOwn(text string) string {
	// message and indicators both ask for the main text's stripped form;
	// it is made once.
	if p.stripIn == text && p.stripOK {
		return p.stripOut
	}
	out := p.stripOwnUncached(text)
	p.stripIn, p.stripOut, p.stripOK = text, out, true
	return out
}

func (p *parser) stripOwnUncached(text string) string {
	lines := strings.Split(text, "\n")
	dropped := false
	out := make([]string, 0, len(lines))
	inSig := false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		if inSig && isForwardMarker(l) { // a forward ends a signature
			inSig = false
		}
		if strings.HasPrefix(l, "____") && listFooterRE.MatchString(l) && p.listFooterAhead(lines[i+1:]) {
			dropped = true
			break // a mailing list's footer runs to the end
		}
		if l == "-- " || l == "--\u00a0" {
			inSig, dropped = true, true
			continue
		}
		if inSig {
			if strings.HasPrefix(l, ">") || isAttribution(l) {
				inSig = false
			} else {
				continue
			}
		}
		if strings.HasPrefix(l, ">") {
			j := i
			for j < len(lines) && strings.HasPrefix(strings.TrimRight(lines[j], "\r"), ">") {
				j++
			}
			block := strings.Join(lines[i:j], "\n")
			attr := ""
			if len(out) > 0 {
				k := len(out) - 1
				for k > 0 && strings.TrimSpace(out[k]) == "" {
					k--
				}
				if isAttribution(out[k]) {
					attr = out[k]
					if p.mentionsTeam(attr + "\n" + block) {
						out, dropped = out[:k], true
					}
				}
			}
			if p.mentionsTeam(attr + "\n" + block) {
				i, dropped = j-1, true
				continue
			}
		}
		out = append(out, l)
	}
	if !dropped && strings.IndexByte(text, '\r') < 0 {
		return text // every line kept as it was: no need to join a copy
	}
	return strings.Join(out, "\n")
}

var listFooterRE = regexp.MustCompile(`^_{20,}\s*$`)

func (p *parser) listFooterAhead(lines []string) bool {
	for i, l := range lines {
		if i >= 8 {
			break
		}
		ll := strings.ToLower(l)
		if strings.Contains(ll, "listinfo") || strings.Contains(ll, "unsubscribe") || strings.Contains(ll, "mailing list") {
			return true
		}
	}
	return false
}

// attributionWords end the line a mail client writes above a quote
// ("On ..., X wrote:").
var attributionWords = []string{"wrote", "wrote on", "schrieb", "a écrit", "escribió", "のメッセージ", "書きました"}

// isAttribution reports whether l is such a line. (A regular expression
// anchored only at the end scanned every line from every position.)
func isAttribution(l string) bool {
	t := strings.TrimRight(l, " \t\r")
	t = strings.TrimSuffix(t, ":")
	t = strings.TrimSuffix(t, "：")
	t = strings.TrimRight(t, " \t")
	if len(t) > 32 {
		t = t[len(t)-32:]
	}
	t = strings.ToLower(t)
	for _, w := range attributionWords {
		if strings.HasSuffix(t, w) {
			return true
		}
	}
	return false
}

// isForwardMarker reports whether l is a forward marker line.
func isForwardMarker(l string) bool {
	return (strings.Contains(l, "--") || strings.Contains(l, "Begin forwarded")) && forwardMarkerRE.MatchString(l)
}

func (p *parser) mentionsTeam(s string) bool {
	ls := strings.ToLower(s)
	if p.opt.TeamName != "" && strings.Contains(ls, strings.ToLower(p.opt.TeamName)) {
		return true
	}
	for _, a := range p.opt.OwnAddresses {
		if strings.Contains(ls, a) {
			return true
		}
	}
	return strings.Contains(ls, strings.ToLower(p.opt.TicketPrefix)+"#")
}

var receivedFromIPRE = regexp.MustCompile(`\[(?:IPv6:)?([0-9a-fA-F:.]+)\]`)

// originatingIP is the first public address in the oldest Received field.
func originatingIP(chain []string) string {
	for i := len(chain) - 1; i >= 0; i-- {
		from := chain[i]
		// an ASCII fold: strings.ToLower changes the length of invalid
		// UTF-8, so its index may not fit the original (found by FuzzForwards)
		if j := indexFoldASCII(from, " by "); j >= 0 {
			from = from[:j]
		}
		for _, m := range receivedFromIPRE.FindAllStringSubmatch(from, -1) {
			a, err := netip.ParseAddr(m[1])
			if err == nil && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				return a.Unmap().String()
			}
		}
	}
	return ""
}

// newCollector returns a collector sharing this parse's line memo.
func (p *parser) newCollector() *collector {
	if p.lineMemo == nil {
		p.lineMemo = map[string][]found{}
	}
	c := newCollector(&p.opt)
	c.memo = p.lineMemo
	return c
}

// indicators fills rep.Indicators from everything the report carries.
func (p *parser) indicators(rep *Report, st *msgState) {
	c := p.newCollector()
	c.scan(rep.Subject)
	c.scan(p.stripOwn(rep.Text))
	for _, t := range st.extra {
		c.scan(t)
	}
	if s := rep.Structured; s != nil {
		for _, ip := range s.SourceIPs {
			c.addIP(ip)
		}
		c.scan(s.scan)
	}
	for _, fw := range rep.Forwarded {
		if fw.Extra == nil || fw.Extra["inline"] == nil {
			for _, a := range []string{fw.From, fw.ReplyTo} {
				if a != "" {
					c.add(vocab.Email, a)
				}
			}
			if fw.OriginatingIP != "" {
				c.addIP(fw.OriginatingIP)
			}
		}
		merge(c, fw.Indicators)
	}
	rep.Indicators = c.ind
	if c.omitted > 0 {
		if rep.Extra == nil {
			rep.Extra = map[string]any{}
		}
		rep.Extra["indicators_omitted"] = c.omitted
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("more indicators than the limit of %d: %d further mentions not listed (the raw message has them all)",
			p.opt.Limits.MaxIndicators, c.omitted))
	}
}

func merge(c *collector, in Indicators) {
	in.Each(func(kind vocab.IndicatorKind, vals []string) {
		for _, v := range vals {
			if kind == vocab.URL && c.ownDomain(hostOf(v)) {
				continue
			}
			c.add(kind, v)
		}
	})
}

func hostOf(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	h := u[i+3:]
	if j := strings.IndexAny(h, "/?#:"); j >= 0 {
		h = h[:j]
	}
	return h
}
