package parse

import (
	"regexp"
	"strings"

	"github.com/madoguchi/madoguchi/internal/rawmime"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

var tlpRE = regexp.MustCompile(`(?i)\bTLP\s*[:：]\s*(RED|AMBER\+STRICT|AMBER|GREEN|CLEAR|WHITE)\b`)

// findTLP returns the most restrictive TLP marking, "" if none.
func findTLP(texts ...string) vocab.TLP {
	var best vocab.TLP
	for _, t := range texts {
		if !containsFoldASCII(t, "tlp") {
			continue
		}
		for _, m := range tlpRE.FindAllStringSubmatch(t, 50) {
			if v, ok := vocab.ParseTLP(m[1]); ok && v.Rank() > best.Rank() {
				best = v
			}
		}
	}
	return best
}

// finish fills the top-level decisions: thread, TLP, classification, ack.
func (p *parser) finish(rep *Report, st *msgState) {
	h := st.hdr
	if t, ok := vocab.FindTicket(rep.Subject, p.opt.TicketPrefix); ok {
		s := t.String()
		rep.Thread.Ticket = &s
	}
	if rep.Thread.Ticket == nil && st.isDSN {
		// A bounce of our own mail: thread by the returned header's tag.
		for _, fw := range rep.Forwarded {
			if t, ok := vocab.FindTicket(fw.Subject, p.opt.TicketPrefix); ok && p.isOwn(fw.From) {
				s := t.String()
				rep.Thread.Ticket = &s
				rep.Trust = "bounce-of-own-message"
				if fw.MessageID != "" {
					rep.Thread.References = append(rep.Thread.References, fw.MessageID)
				}
				break
			}
		}
	}
	for _, pt := range p.opt.PartnerTags {
		if pt.Pattern == nil {
			continue
		}
		if m := pt.Pattern.FindString(rep.Subject); m != "" {
			rep.Thread.PartnerTicket, rep.Thread.Partner = m, pt.Name
			break
		}
	}
	tlp := findTLP(rep.Subject, rep.Text)
	if tlp == "" && rep.Structured != nil && rep.Structured.Format == "iodef" {
		switch r := strings.ToLower(rep.Structured.Fields["restriction"]); r {
		case "public":
			tlp = vocab.TLPClear
		case "need-to-know", "private":
			tlp = vocab.TLPAmber
		default:
			if t, ok := vocab.ParseTLP(r); ok && r != "white" {
				tlp = t
			}
		}
	}
	if tlp != "" {
		rep.TLP = &tlp
	}
	rep.Ack = p.ackDecision(rep, st, h)
	rep.Classification = p.classify(rep)
	if isAutoReply(rep.Ack.Reason) && rep.Structured == nil {
		// An out-of-office note or a bounce quotes our subject; its words
		// say nothing about an incident.
		rep.Classification = Classification{Taxonomy: "other", Type: "undetermined", Confidence: 0.9, Rule: "auto-reply"}
	}
}

var autoSubjectRE = regexp.MustCompile(`(?i)^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheitsnotiz|自動応答|不在|réponse automatique|undeliverable|undelivered mail|delivery status notification|mail delivery failed|returned mail)`)

func (p *parser) isOwn(addr string) bool {
	for _, a := range p.opt.OwnAddresses {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

func isAutoReply(reason string) bool {
	for _, p := range []string{"rfc3834-auto-submitted: Auto-Submitted: auto-replied", "rfc3834-precedence", "null-sender", "auto-reply subject", "rfc3834-auto-submitted: auto-reply header"} {
		if strings.HasPrefix(reason, p) {
			return true
		}
	}
	return false
}

// ackDecision applies RFC 3834 and the team's rules.
func (p *parser) ackDecision(rep *Report, st *msgState, h rawmime.Header) Ack {
	no := func(reason string) Ack { return Ack{Send: false, Reason: reason} }
	for _, a := range p.opt.OwnAddresses {
		if rep.From == a {
			return no("from-team-itself: From is the team's own address")
		}
	}
	rp := strings.TrimSpace(h.Get("Return-Path"))
	if p.opt.HasEnvelope && (p.opt.MailFrom == "" || p.opt.MailFrom == "<>") {
		return no("null-sender: empty envelope sender (RFC 3834 section 2)")
	}
	if rp == "<>" || rp == "" && h.Has("Return-Path") {
		return no("null-sender: Return-Path <> (RFC 3834 section 2)")
	}
	local := rep.From
	if i := strings.IndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	if strings.EqualFold(local, "mailer-daemon") || strings.EqualFold(local, "postmaster") && st.isDSN {
		return no("null-sender-dsn: from MAILER-DAEMON")
	}
	if st.isDSN {
		return no("null-sender-dsn: delivery or disposition report (multipart/report)")
	}
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return no("rfc3834-auto-submitted: Auto-Submitted: " + v)
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return no("rfc3834-precedence: Precedence: " + strings.ToLower(h.Get("Precedence")))
	}
	for _, f := range h {
		n := strings.ToLower(f.Name)
		if n == "list-id" || n == "list-unsubscribe" || n == "list-post" || n == "list-help" || n == "list-owner" || n == "list-subscribe" || n == "list-archive" {
			return no("rfc3834-list: " + f.Name + " present")
		}
	}
	if v := strings.ToLower(h.Get("X-Auto-Response-Suppress")); v != "" {
		for _, w := range []string{"all", "oof", "autoreply", "dr", "rn", "nrn"} {
			if strings.Contains(v, w) {
				return no("x-auto-response-suppress: " + v)
			}
		}
	}
	if h.Has("X-Autoreply") || h.Has("X-Autorespond") || h.Has("X-Autoresponder") || strings.EqualFold(h.Get("X-Auto-Reply"), "yes") {
		return no("rfc3834-auto-submitted: auto-reply header present")
	}
	if autoSubjectRE.MatchString(rep.Subject) {
		return no("auto-reply subject: " + rawmime.Clip(rep.Subject, 40))
	}
	if rep.From == "" && rep.ReplyTo == "" && !h.Has("Sender") && (rp == "" || rp == "<>") {
		return no("no-reply-address: no From, Reply-To, Sender or Return-Path")
	}
	return Ack{Send: true, Reason: "human-new-report: no RFC 3834 markers; acknowledged when it opens an incident"}
}
