package senderauth

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/madoguchi/madoguchi/internal/rawmime"
	"github.com/madoguchi/madoguchi/parse"
)

// Envelope is what the receiving listener knew of a message.
type Envelope struct {
	// Checked: the message came in over SMTP to this gateway, so SPF is
	// checked here for ClientIP, MailFrom and Helo. Otherwise they are
	// another MTA's to check (Authentication-Results).
	Checked  bool
	ClientIP string
	MailFrom string
	Helo     string
}

// Checker checks messages. Its zero value uses the system's resolver.
type Checker struct {
	// Resolver does every DNS lookup (nil: the system's, through a
	// cache).
	Resolver *Resolver
	// TrustedAuthservIDs are the authserv-ids whose
	// Authentication-Results headers are believed.
	TrustedAuthservIDs []string
	// Timeout bounds one message's checks (0: 10 s).
	Timeout time.Duration
	// MaxSignatures bounds the DKIM signatures verified (0: 5).
	MaxSignatures int

	once sync.Once
}

func (c *Checker) resolver() *Resolver {
	c.once.Do(func() {
		if c.Resolver == nil {
			c.Resolver = NewResolver("")
		}
	})
	return c.Resolver
}

// Check authenticates raw (the message as received) from the From domain
// fromDomain.
func (c *Checker) Check(ctx context.Context, raw []byte, fromDomain string, env Envelope) *parse.Authentication {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := c.resolver()
	fromDomain = strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	a := &parse.Authentication{DKIMDomains: []string{}}

	// DKIM, whoever received it.
	maxSig := c.MaxSignatures
	if maxSig <= 0 {
		maxSig = 5
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{MaxVerifications: maxSig,
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }})
	a.DKIM = "none"
	switch {
	case err != nil && !errors.Is(err, dkim.ErrTooManySignatures):
		a.DKIM, a.Detail = "permerror", "dkim: "+err.Error()
	default:
		for _, v := range vs {
			res := "fail"
			switch {
			case v.Err == nil:
				res = "pass"
				d := strings.ToLower(v.Domain)
				if !slices.Contains(a.DKIMDomains, d) {
					a.DKIMDomains = append(a.DKIMDomains, d)
				}
			case dkim.IsTempFail(v.Err):
				res = "temperror"
			case dkim.IsPermFail(v.Err):
				res = "permerror"
			}
			a.DKIM = better(a.DKIM, res)
		}
	}

	// SPF (and the identity it vouches for) from our own check or a
	// trusted receiver's header.
	var spfDomain, arDMARC string
	hdr, _ := rawmime.SplitMessage(raw)
	switch {
	case env.Checked:
		a.Source = "checked"
		a.SPF, spfDomain = c.spf(ctx, r, env)
	default:
		a.SPF, a.Source = "none", "none"
		if id, spfRes, mailFrom, dm, ok := c.trustedResults(hdr); ok {
			a.Source = "authentication-results: " + id
			a.SPF, arDMARC = spfRes, dm
			spfDomain = domainOf(mailFrom)
		}
	}

	// DMARC: the From domain's policy (or its organisational domain's),
	// and whether a passing identity is aligned with From.
	a.DMARC = "none"
	if fromDomain == "" {
		return a
	}
	rec, derr := c.dmarcRecord(r, ctx, fromDomain)
	var dkimMode, spfMode dmarc.AlignmentMode = dmarc.AlignmentRelaxed, dmarc.AlignmentRelaxed
	if rec != nil {
		if rec.DKIMAlignment == dmarc.AlignmentStrict {
			dkimMode = dmarc.AlignmentStrict
		}
		if rec.SPFAlignment == dmarc.AlignmentStrict {
			spfMode = dmarc.AlignmentStrict
		}
	}
	dkimAligned := slices.ContainsFunc(a.DKIMDomains, func(d string) bool { return aligned(d, fromDomain, dkimMode) })
	spfAligned := a.SPF == "pass" && spfDomain != "" && aligned(spfDomain, fromDomain, spfMode)
	a.FromAligned = dkimAligned || spfAligned
	switch {
	case rec != nil && a.FromAligned:
		a.DMARC = "pass"
	case rec != nil:
		a.DMARC = "fail"
	case derr != nil && dmarc.IsTempFail(derr):
		a.DMARC = "temperror"
	case arDMARC != "":
		a.DMARC = arDMARC // a trusted receiver knew a policy we could not read
	}
	return a
}

// better keeps the more telling of two DKIM results: a pass over
// anything, a failure over an error, an error over none.
func better(a, b string) string {
	rank := func(r string) int {
		switch r {
		case "temperror":
			return 1
		case "permerror":
			return 2
		case "fail":
			return 3
		case "pass":
			return 4
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// spf checks the envelope: MAIL FROM's domain, or HELO's for a null
// sender. It returns the result and the domain checked.
func (c *Checker) spf(ctx context.Context, r *Resolver, env Envelope) (string, string) {
	ip, err := netip.ParseAddr(env.ClientIP)
	if err != nil {
		return "none", ""
	}
	helo := strings.TrimSuffix(strings.ToLower(env.Helo), ".")
	sender := strings.ToLower(strings.Trim(env.MailFrom, "<>"))
	domain := domainOf(sender)
	if domain == "" {
		domain = helo
		if helo != "" {
			sender = "postmaster@" + helo
		}
	}
	if domain == "" {
		return "none", ""
	}
	res, _ := spf.CheckHostWithSender(net.IP(ip.AsSlice()), helo, sender, spf.WithResolver(r), spf.WithContext(ctx))
	return string(res), domain
}

// trustedResults reads the first Authentication-Results header of a
// trusted authserv-id (the receiver in front adds its own on top).
func (c *Checker) trustedResults(hdr []byte) (id, spfRes, mailFrom, dmarcRes string, ok bool) {
	if len(c.TrustedAuthservIDs) == 0 {
		return "", "", "", "", false
	}
	for _, v := range rawmime.ReadHeader(hdr, 1<<20, nil).Values("Authentication-Results") {
		ident, results, err := authres.Parse(v)
		if err != nil || !slices.ContainsFunc(c.TrustedAuthservIDs, func(t string) bool { return strings.EqualFold(t, ident) }) {
			continue
		}
		spfRes = "none"
		for _, r := range results {
			switch r := r.(type) {
			case *authres.SPFResult:
				spfRes, mailFrom = string(r.Value), r.From
				if mailFrom == "" {
					mailFrom = "postmaster@" + r.Helo
				}
			case *authres.DMARCResult:
				dmarcRes = string(r.Value)
			}
		}
		return ident, spfRes, mailFrom, dmarcRes, true
	}
	return "", "", "", "", false
}

// dmarcRecord is the From domain's DMARC record, or its organisational
// domain's (RFC 7489 section 6.6.3).
func (c *Checker) dmarcRecord(r *Resolver, ctx context.Context, domain string) (*dmarc.Record, error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(domain); org != domain {
			rec, err = dmarc.LookupWithOptions(org, opts)
		}
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// aligned compares two domains as DMARC does: strict is the same name,
// relaxed the same organisational domain.
func aligned(a, b string, mode dmarc.AlignmentMode) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return orgDomain(a) == orgDomain(b)
}

func orgDomain(d string) string {
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}

func domainOf(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok {
		return strings.ToLower(strings.TrimSuffix(d, "."))
	}
	return ""
}
