package pipeline

import (
	"context"
	"strings"

	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/senderauth"
	"github.com/madoguchi/madoguchi/store"
)

// Envelope is what the listener recorded of a spooled message, for the
// sender authentication: over SMTP (and the submission listener) the
// client IP, envelope sender and HELO are checked here; what another MTA
// received (LMTP, IMAP, import) carries that MTA's results.
func Envelope(msg *store.Message) senderauth.Envelope {
	env := senderauth.Envelope{MailFrom: msg.MailFrom}
	if msg.Channel != store.ChannelSMTP && msg.Channel != store.ChannelSubmission {
		return env
	}
	// Peer is "IP:PORT helo=NAME" (and " auth=USER" on the submission
	// listener); a HELO name is one word.
	addr, rest, _ := strings.Cut(msg.Peer, " ")
	if i := strings.LastIndex(addr, ":"); i > 0 {
		addr = addr[:i]
	}
	env.Checked, env.ClientIP = true, strings.Trim(addr, "[]")
	if _, h, ok := strings.Cut(rest, "helo="); ok {
		env.Helo, _, _ = strings.Cut(h, " ")
	}
	return env
}

// authenticate fills rep.Authentication and applies what it decides: a
// From that fails DMARC (and is not vouched for by a signature bound to
// it) names no partner, and a message whose envelope sender fails SPF and
// whose From fails DMARC is not acknowledged (a forged sender would get
// our signed mail: backscatter).
func (p *Processor) authenticate(ctx context.Context, msg *store.Message, rep *parse.Report) {
	if p.Auth != nil {
		Authenticate(ctx, p.Auth, msg.Raw, Envelope(msg), rep)
	}
}

// Authenticate is what the pipeline does of a report's sender
// authentication (the parse command's dry run does the same).
func Authenticate(ctx context.Context, c *senderauth.Checker, raw []byte, env senderauth.Envelope, rep *parse.Report) {
	_, domain, _ := strings.Cut(rep.From, "@")
	a := c.Check(ctx, raw, domain, env)
	rep.Authentication = a
	if !forged(rep) {
		return
	}
	rep.Warnings = append(rep.Warnings, "the From domain "+domain+" fails DMARC: the sender is not who the From header says")
	if rep.Thread.Partner != "" {
		rep.Warnings = append(rep.Warnings, "not treated as the partner "+rep.Thread.Partner+": its From fails DMARC")
		rep.Thread.Partner, rep.Thread.PartnerTicket = "", ""
	}
	if a.SPF == "fail" && rep.Ack.Send {
		rep.Ack.Send, rep.Ack.Reason = false, "the envelope sender fails SPF and the From fails DMARC: no acknowledgement to a forged sender"
	}
}

// forged: the From domain fails DMARC and no signature bound to the From
// address vouches for the message (a good OpenPGP signature counts,
// whatever DNS says).
func forged(rep *parse.Report) bool {
	return rep.Authentication.Forged() && !rep.Signature.Authenticated()
}
