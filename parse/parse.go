package parse

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

// Limits bound the work Parse does on hostile input. Zero means default.
type Limits struct {
	// MaxDepth bounds how deep forwarded messages nest as reports of
	// their own (default 128); below it they are read into the message
	// that holds them. Multipart nesting has no depth limit: the walk is
	// iterative, bounded by MaxParts and MaxWalkBytes, so no wrapping
	// hides a leaf from it.
	MaxDepth int
	MaxParts int // parts in the whole tree; default 1000
	// MaxWalkBytes bounds the bytes of multipart bodies split in one
	// walk (each nesting level reads its body again): default 64 MiB, or
	// eight times the message's size when that is more.
	MaxWalkBytes    int64
	MaxHeaderBytes  int   // per header block; default 256 KiB
	MaxDecodedBytes int64 // total decoded bytes; default 64 MiB
	MaxTextBytes    int   // text scanned for indicators; default 4 MiB
	// MaxIndicators per report (default 10000): beyond it indicators are
	// counted, not listed (Extra "indicators_omitted" and a warning), so
	// that one report cannot hold the store's writer with a million rows.
	MaxIndicators int
	// MaxParseTime bounds the work on one message (default 10s): past it
	// the walk stops where it is, with a warning, and what was read is
	// the report.
	MaxParseTime time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 128
	}
	if l.MaxParts <= 0 {
		l.MaxParts = 1000
	}
	if l.MaxWalkBytes <= 0 {
		l.MaxWalkBytes = 64 << 20
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 256 << 10
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = 64 << 20
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = 4 << 20
	}
	if l.MaxIndicators <= 0 {
		l.MaxIndicators = 10000
	}
	if l.MaxParseTime <= 0 {
		l.MaxParseTime = 10 * time.Second
	}
	return l
}

// PartnerTag is a partner's ticket-ID pattern.
type PartnerTag struct {
	Name    string
	Pattern *regexp.Regexp
}

// Options carry what Parse needs to know about the team. The zero value
// parses with no team knowledge and default limits.
type Options struct {
	TeamName     string
	OwnAddresses []string // lower-case
	OwnDomains   []string // lower-case; exactly these, not subdomains
	TicketPrefix string   // default CSIRT
	PartnerTags  []PartnerTag
	Rules        *Rules // nil: the built-in rules
	Limits       Limits
	// MailFrom is the envelope sender when known ("<>" or "" for null
	// when HasEnvelope is true).
	MailFrom    string
	HasEnvelope bool
}

// ErrEmpty is returned for an empty message.
var ErrEmpty = errors.New("parse: empty message")

// Parse parses one message. It always returns a usable report, with
// warnings for whatever it could not read; err is non-nil only for input
// that is not a message at all (empty).
func Parse(raw []byte, opt Options) (rep *Report, err error) {
	opt.Limits = opt.Limits.withDefaults()
	if opt.TicketPrefix == "" {
		opt.TicketPrefix = "CSIRT"
	}
	p := &parser{opt: opt, budget: opt.Limits.MaxDecodedBytes, walkBudget: max(opt.Limits.MaxWalkBytes, 8*int64(len(raw))),
		deadline: time.Now().Add(opt.Limits.MaxParseTime), fwText: opt.Limits.MaxTextBytes}
	defer func() {
		if r := recover(); r != nil { // a bug must not take the daemon down
			if rep == nil {
				rep = newReport()
			}
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("parser failure: %v", r))
			err = fmt.Errorf("parse: internal error: %v", r)
		}
	}()
	sum := sha256.Sum256(raw)
	if len(raw) == 0 {
		rep = newReport()
		rep.ReceivedSHA256 = hex.EncodeToString(sum[:])
		return rep, ErrEmpty
	}
	var st *msgState
	rep, st = p.message(raw, 0)
	rep.ReceivedSHA256 = hex.EncodeToString(sum[:])
	p.finish(rep, st)
	return rep, nil
}

func newReport() *Report {
	return &Report{
		Decryption:  Decryption{Status: "none"},
		Signature:   Signature{Status: "none"},
		Attachments: []Attachment{},
		Forwarded:   []*Report{},
		Warnings:    []string{},
		Thread:      Thread{References: []string{}},
		Indicators:  emptyIndicators(),
	}
}

type parser struct {
	opt    Options
	budget int64
	parts  int
	// walkBudget is what is left of MaxWalkBytes.
	walkBudget int64
	// fwText is what is left of the text forwarded reports may hold
	// together (MaxTextBytes).
	fwText int
	// deadline ends the walk (MaxParseTime); timedOut once it has.
	deadline time.Time
	timedOut bool
	lineMemo map[string][]found
	// the last stripOwn input and output
	stripIn, stripOut string
	stripOK           bool
}

// msgState collects one message's walk.
type msgState struct {
	rep        *Report
	hdr        rawmime.Header
	plain      []string // candidate main texts (text/plain)
	plainCS    []string
	html       []string
	htmlCS     string
	extra      []string // other text to scan for indicators (attachments)
	structured *Structured
	isDSN      bool
	isARF      bool
}

// message parses one RFC 5322 message at the given nesting depth.
func (p *parser) message(raw []byte, depth int) (*Report, *msgState) {
	rep := newReport()
	st := &msgState{rep: rep}
	warn := func(s string) { rep.Warnings = append(rep.Warnings, s) }
	hb, body := rawmime.SplitMessage(raw)
	st.hdr = p.readHeader(hb, warn)
	h := st.hdr
	rep.MessageID = normalizeMsgID(h.Get("Message-ID"))
	rep.Subject = rawmime.Clip(strings.TrimSpace(decodeHeader(h.Get("Subject"))), 2000)
	rep.From, rep.FromName = parseAddress(h.Get("From"))
	rep.ReplyTo, _ = parseAddress(h.Get("Reply-To"))
	rep.To = splitAddressList(h.Get("To"))
	rep.Date = strings.TrimSpace(h.Get("Date"))
	rep.Thread.InReplyTo = normalizeMsgID(h.Get("In-Reply-To"))
	rep.Thread.References = msgIDList(h.Get("References"))
	rep.ReceivedChain = h.Values("Received")
	rep.OriginatingIP = originatingIP(rep.ReceivedChain)
	p.entity(st, h, body, depth)
	p.pickText(st)
	if st.structured != nil {
		rep.Structured = st.structured
		if st.structured.Format == "arf" || st.structured.Format == "x-arf" {
			rep.Text = strings.TrimRight(rep.Text, "\n") + "\n\n" + st.structured.text
		}
	}
	// Inline forwards inside the main text.
	if depth < p.opt.Limits.MaxDepth && !p.expired(rep) {
		if p.lineMemo == nil {
			// Sized for the text's lines up front: growing it line by line
			// was a tenth of parsing a 20 KiB report.
			p.lineMemo = make(map[string][]found, min(strings.Count(rep.Text, "\n")+16, maxMemoLines))
		}
		rep.Forwarded = append(rep.Forwarded, p.inlineForwards(p.stripOwn(rep.Text))...)
	}
	// The attached messages' texts follow the main text, up to the text
	// limit (built once: appending each to the whole was quadratic).
	var text strings.Builder
	text.WriteString(rep.Text)
	cut := 0
	for _, fw := range rep.Forwarded {
		if fw.Extra == nil || fw.Extra["inline"] == nil {
			if text.Len() >= p.opt.Limits.MaxTextBytes {
				cut++
				continue
			}
			trimmed := strings.TrimRight(text.String(), "\n")
			text.Reset()
			text.WriteString(trimmed)
			text.WriteString("\n\n---------- Attached message ----------\nFrom: " + fw.From + "\nDate: " + fw.Date + "\nSubject: " + fw.Subject + "\n\n" + fw.Text)
		}
	}
	rep.Text = text.String()
	if cut > 0 {
		rep.Text = strings.TrimRight(rep.Text, "\n") + fmt.Sprintf("\n\n[%d more attached messages: their text is in the forwarded reports and the raw message]\n", cut)
	}
	if depth > 0 {
		// Forwarded reports share one text budget, so that a message of
		// a hundred forwards is not stored as its size several times.
		if len(rep.Text) > p.fwText {
			rep.Text = strings.ToValidUTF8(rep.Text[:max(p.fwText, 0)], "") + "\n[text cut at the limit; the raw message has it all]\n"
			rep.Warnings = append(rep.Warnings, "text longer than what is left of the forwarded messages' limit; truncated")
		}
		p.fwText -= len(rep.Text)
	}
	rep.Extra = map[string]any{}
	if st.isDSN {
		rep.Extra["dsn"] = true
	}
	if len(st.extra) > 0 {
		rep.Extra["scanned_attachments"] = len(st.extra)
	}
	p.indicators(rep, st)
	if len(rep.Extra) == 0 {
		rep.Extra = nil
	}
	rep.Language = languageOf(rep.Subject, rep.Text)
	return rep, st
}

// expired tells whether the parse is past its time (MaxParseTime), and
// says so in the report the first time.
func (p *parser) expired(rep *Report) bool {
	if p.timedOut {
		return true
	}
	if time.Now().Before(p.deadline) {
		return false
	}
	p.timedOut = true
	rep.Warnings = append(rep.Warnings, fmt.Sprintf("parsing stopped after %v (the limit): the rest of the message is not read", p.opt.Limits.MaxParseTime))
	return true
}

// entity walks one MIME entity and everything below it, depth first in
// document order, with a stack instead of recursion: the work is bounded
// by the parts and bytes it reads, never by how deep a sender nests
// multiparts, so every reachable leaf is read. depth is the forward
// nesting of the message the entity belongs to.
func (p *parser) entity(st *msgState, h rawmime.Header, body []byte, depth int) {
	rep := st.rep
	warn := func(s string) { rep.Warnings = append(rep.Warnings, s) }
	stack := []mimePart{{h: h, body: body}}
	for len(stack) > 0 && !p.expired(rep) {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p.parts++
		if p.parts > p.opt.Limits.MaxParts {
			if p.parts == p.opt.Limits.MaxParts+1 {
				warn(fmt.Sprintf("more than %d MIME parts; the rest ignored", p.opt.Limits.MaxParts))
			}
			return
		}
		ct, params := rawmime.MediaType(n.h.Get("Content-Type"), "text/plain")
		disp, dparams := rawmime.MediaType(n.h.Get("Content-Disposition"), "")
		filename := dparams["filename"]
		if filename == "" {
			filename = params["name"]
		}
		filename = decodeHeader(filename)
		if !strings.HasPrefix(ct, "multipart/") {
			p.leaf(st, ct, params, disp, filename, n.h, n.body, depth)
			continue
		}
		b := params["boundary"]
		if b == "" {
			warn("multipart without boundary; read as text")
			p.leaf(st, "text/plain", params, "", "", n.h, n.body, depth)
			continue
		}
		if p.walkBudget -= int64(len(n.body)); p.walkBudget < 0 {
			warn(fmt.Sprintf("multipart nesting read more than %d bytes; the parts below ignored", max(p.opt.Limits.MaxWalkBytes, 0)))
			return
		}
		if ct == "multipart/report" {
			switch strings.ToLower(params["report-type"]) {
			case "delivery-status", "disposition-notification":
				st.isDSN = true
			case "feedback-report":
				st.isARF = true
			}
		}
		parts, closed := p.multipartParts(n.body, b, warn)
		if !closed {
			warn("multipart " + rawmime.Clip(b, 40) + " has no closing delimiter")
		}
		if len(parts) == 0 {
			warn("multipart without parts; read as text")
			p.leaf(st, "text/plain", map[string]string{}, "", "", n.h, n.body, depth)
			continue
		}
		for i := len(parts) - 1; i >= 0; i-- { // popped in document order
			stack = append(stack, parts[i])
		}
	}
}

func (p *parser) decoded(st *msgState, h rawmime.Header, body []byte) []byte {
	limit := p.budget
	if limit <= 0 {
		st.rep.Warnings = append(st.rep.Warnings, "decoded-size limit reached; part skipped")
		return nil
	}
	if limit > int64(len(body))+16 {
		limit = int64(len(body)) + 16
	}
	out, ok := rawmime.DecodeTransfer(body, h.Get("Content-Transfer-Encoding"), int(limit))
	if !ok {
		st.rep.Warnings = append(st.rep.Warnings, "damaged "+strings.ToLower(h.Get("Content-Transfer-Encoding"))+" content decoded leniently")
	}
	p.budget -= int64(len(out))
	return out
}

func (p *parser) leaf(st *msgState, ct string, params map[string]string, disp, filename string, h rawmime.Header, body []byte, depth int) {
	rep := st.rep
	data := p.decoded(st, h, body)
	isAttachment := disp == "attachment" || (filename != "" && !strings.HasPrefix(ct, "text/"))
	switch {
	case ct == "message/rfc822" || ct == "message/global":
		if depth >= p.opt.Limits.MaxDepth {
			// Too deep to be a report of its own: its parts are read into
			// this message, so that nesting hides nothing (the part limit
			// bounds this).
			rep.Warnings = append(rep.Warnings, "forwarded message nested too deep; its text read into the message holding it")
			rep.Attachments = append(rep.Attachments, attachment(filename, ct, data))
			ih, ib := rawmime.SplitMessage(data)
			p.entity(st, p.readHeader(ih, func(w string) { rep.Warnings = append(rep.Warnings, w) }), ib, depth)
			return
		}
		fw, _ := p.message(data, depth+1)
		rep.Forwarded = append(rep.Forwarded, fw)
		rep.Attachments = append(rep.Attachments, attachment(filename, ct, data))
		return
	case ct == "text/rfc822-headers":
		fw, _ := p.message(append(append([]byte{}, data...), '\n', '\n'), depth+1)
		rep.Forwarded = append(rep.Forwarded, fw)
		return
	case ct == "message/feedback-report":
		st.isARF = true
		txt, _, _ := decodeCharset(data, "utf-8")
		st.structured = parseARF(txt)
		return
	case ct == "message/delivery-status" || ct == "message/global-delivery-status":
		st.isDSN = true
		return
	case ct == "text/plain" && !isAttachment:
		txt, cs, w := decodeCharset(data, params["charset"])
		if w != "" {
			rep.Warnings = append(rep.Warnings, w)
		}
		if s := parseXARF(txt); s != nil && st.structured == nil && len(st.plain) > 0 {
			st.structured = s
			rep.Attachments = append(rep.Attachments, attachment(filename, ct, data))
			return
		}
		if filename != "" && len(st.plain) > 0 {
			st.extra = append(st.extra, txt)
			rep.Attachments = append(rep.Attachments, attachment(filename, ct, data))
			return
		}
		st.plain = append(st.plain, txt)
		st.plainCS = append(st.plainCS, cs)
		return
	case ct == "text/html" && !isAttachment:
		txt, cs, _ := decodeCharset(data, params["charset"])
		st.html = append(st.html, htmlToText(txt))
		if st.htmlCS == "" {
			st.htmlCS = cs
		}
		return
	}
	rep.Attachments = append(rep.Attachments, attachment(filename, ct, data))
	if isTextual(ct, filename) {
		txt, _, _ := decodeCharset(data, params["charset"])
		if s := parseXARF(txt); s != nil && st.structured == nil {
			st.structured = s
		} else if s := parseIODEF(data); s != nil {
			st.structured = s
			txt = "" // its indicators come from the parsed document, not namespaces
		} else if s := parseCSVFeed(txt); s != nil && st.structured == nil {
			st.structured = s
		}
		st.extra = append(st.extra, txt)
	}
}

func isTextual(ct, filename string) bool {
	if strings.HasPrefix(ct, "text/") {
		return true
	}
	switch ct {
	case "application/xml", "application/json", "application/csv", "application/x-iodef+xml", "application/iodef+xml", "application/yaml":
		return true
	}
	f := strings.ToLower(filename)
	for _, ext := range []string{".txt", ".csv", ".xml", ".json", ".log", ".yaml", ".yml"} {
		if strings.HasSuffix(f, ext) {
			return true
		}
	}
	return false
}

func attachment(name, ct string, data []byte) Attachment {
	sum := sha256.Sum256(data)
	return Attachment{Filename: name, ContentType: ct, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// pickText chooses the main text: the first text/plain, else HTML as text.
func (p *parser) pickText(st *msgState) {
	rep := st.rep
	switch {
	case len(st.plain) > 0:
		rep.Text, rep.Charset = st.plain[0], st.plainCS[0]
		st.extra = append(st.extra, st.plain[1:]...)
	case len(st.html) > 0:
		rep.Text, rep.Charset = st.html[0], st.htmlCS
	}
	if len(rep.Text) > p.opt.Limits.MaxTextBytes {
		rep.Text = rep.Text[:p.opt.Limits.MaxTextBytes]
		rep.Warnings = append(rep.Warnings, "text longer than the limit; truncated")
	}
}

func normalizeMsgID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i : i+j+1]
		}
	}
	if v == "" || strings.ContainsAny(v, " \t") {
		return ""
	}
	return "<" + v + ">"
}

var msgIDRE = regexp.MustCompile(`<[^<>\s]+>`)

func msgIDList(v string) []string {
	return append([]string{}, msgIDRE.FindAllString(v, 100)...)
}

// parseAddress returns the lower-cased address and the display name.
func parseAddress(v string) (addr, name string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", ""
	}
	if a, err := mail.ParseAddress(v); err == nil {
		return strings.ToLower(a.Address), decodeHeader(a.Name)
	}
	dec := decodeHeader(v)
	if m := angleAddrRE.FindStringSubmatch(dec); m != nil {
		return strings.ToLower(m[1]), strings.Trim(strings.TrimSpace(dec[:strings.Index(dec, "<")]), `"`)
	}
	if m := bareAddrRE.FindString(dec); m != "" {
		return strings.ToLower(m), ""
	}
	return "", dec
}

var angleAddrRE = regexp.MustCompile(`<([^<>@\s]+@[^<>@\s]+)>`)
var bareAddrRE = regexp.MustCompile(`[^<>@\s"]+@[^<>@\s"]+`)

func splitAddressList(v string) []string {
	if v == "" {
		return nil
	}
	if l, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(l))
		for _, a := range l {
			out = append(out, strings.ToLower(a.Address))
		}
		return out
	}
	var out []string
	for _, m := range bareAddrRE.FindAllString(decodeHeader(v), 100) {
		out = append(out, strings.ToLower(strings.Trim(m, "<>,;")))
	}
	return out
}
