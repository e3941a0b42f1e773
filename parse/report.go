package parse

import "github.com/madoguchi/madoguchi/internal/vocab"

// Report is the report JSON of shared/interface.md.
type Report struct {
	MessageID      string     `json:"message_id"`
	From           string     `json:"from"`
	FromName       string     `json:"from_name,omitempty"`
	ReplyTo        string     `json:"reply_to,omitempty"`
	To             []string   `json:"to,omitempty"`
	Date           string     `json:"date,omitempty"`
	Subject        string     `json:"subject"`
	Text           string     `json:"text"`
	Charset        string     `json:"charset"`
	Language       string     `json:"language"`
	ReceivedSHA256 string     `json:"received_sha256"`
	Decryption     Decryption `json:"decryption"`
	Signature      Signature  `json:"signature"`
	// Authentication is who really sent it, as DKIM, SPF and DMARC say
	// (filled by the pipeline: it takes DNS; nil from parse alone).
	Authentication *Authentication `json:"authentication,omitempty"`
	Classification Classification  `json:"classification"`
	Indicators     Indicators      `json:"indicators"`
	Thread         Thread          `json:"thread"`
	TLP            *vocab.TLP      `json:"tlp"`
	Ack            Ack             `json:"ack"`
	Attachments    []Attachment    `json:"attachments"`
	Forwarded      []*Report       `json:"forwarded"`
	Structured     *Structured     `json:"structured,omitempty"`
	OriginatingIP  string          `json:"originating_ip,omitempty"`
	ReceivedChain  []string        `json:"received_chain,omitempty"`
	Warnings       []string        `json:"warnings"`
	Trust          string          `json:"trust,omitempty"`
	Extra          map[string]any  `json:"extra,omitempty"`
}

// Authentication is the sender authentication of a message: each check's
// result in the words of RFC 8601 (pass, fail, none, temperror, permerror;
// SPF also softfail and neutral), the domains of the DKIM signatures that
// verify, and whether a passing DKIM or SPF identity is aligned with the
// From domain (DMARC relaxed alignment unless the policy says strict).
type Authentication struct {
	DKIM        string   `json:"dkim"`
	DKIMDomains []string `json:"dkim_domains"`
	SPF         string   `json:"spf"`
	DMARC       string   `json:"dmarc"`
	FromAligned bool     `json:"from_aligned"`
	// Source says where SPF and DMARC come from: "checked" (the SMTP
	// listener's envelope), "authentication-results: ID" (a trusted
	// receiving MTA's header) or "none" (neither: SPF unknown).
	Source string `json:"source,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Forged tells whether the From domain fails DMARC: the From is not to be
// believed (the sender is a stranger whatever the header says).
func (a *Authentication) Forged() bool { return a != nil && a.DMARC == "fail" }

// Decryption is the decryption verdict (filled by crypto).
type Decryption struct {
	Status vocab.DecStatus `json:"status"`
	// Method is "pgp" or "smime" ("none" when nothing was encrypted).
	Method string `json:"method"`
	Detail string `json:"detail,omitempty"`
}

// Signature is the signature verdict (filled by crypto).
type Signature struct {
	Status            vocab.SigStatus `json:"status"`
	SignerFingerprint string          `json:"signer_fingerprint,omitempty"`
	Signer            string          `json:"signer,omitempty"`
	SignerMismatch    bool            `json:"signer_mismatch,omitempty"`
	// Method is "pgp" or "smime" ("none" when nothing was signed).
	Method string `json:"method"`
	// SignerEmail is the signer's address (S/MIME: the certificate's;
	// OpenPGP: the primary user ID's); for S/MIME also the certificate's
	// subject, issuer and SHA-256.
	SignerEmail      string `json:"signer_email,omitempty"`
	SignerSubject    string `json:"signer_subject,omitempty"`
	SignerIssuer     string `json:"signer_issuer,omitempty"`
	SignerCertSHA256 string `json:"signer_cert_sha256,omitempty"`
	// Scope is "whole" when the signature covers the whole message and
	// "part" when it covers only SignedPart; a partial signature grants
	// no trust.
	Scope      vocab.SigScope `json:"scope,omitempty"`
	SignedPart string         `json:"signed_part,omitempty"`
	Detail     string         `json:"detail,omitempty"`
}

// Authenticated: a good signature over the whole message by a key that
// carries the From address (what earns a message trust; anyone else is a
// stranger, whose words are repeated sparingly: the From may be forged).
func (s Signature) Authenticated() bool {
	return s.Status == vocab.SigGood && s.Scope == vocab.ScopeWhole && !s.SignerMismatch
}

// Classification is an RSIT taxonomy/type with a confidence.
type Classification struct {
	Taxonomy   string  `json:"taxonomy"`
	Type       string  `json:"type"`
	Confidence float64 `json:"confidence"`
	Rule       string  `json:"rule,omitempty"`
}

// Each calls fn with each kind's indicators that the store keeps (CIDRs
// are kept as their addresses, under ipv4 and ipv6).
func (in Indicators) Each(fn func(vocab.IndicatorKind, []string)) {
	fn(vocab.IPv4, in.IPv4)
	fn(vocab.IPv6, in.IPv6)
	fn(vocab.Domain, in.Domains)
	fn(vocab.URL, in.URLs)
	fn(vocab.Email, in.Emails)
	fn(vocab.MD5, in.MD5)
	fn(vocab.SHA1, in.SHA1)
	fn(vocab.SHA256, in.SHA256)
	fn(vocab.CVE, in.CVEs)
}

// Indicators by kind, each de-duplicated and sorted in order of appearance.
type Indicators struct {
	IPv4    []string `json:"ipv4"`
	IPv6    []string `json:"ipv6"`
	Domains []string `json:"domains"`
	URLs    []string `json:"urls"`
	Emails  []string `json:"emails"`
	MD5     []string `json:"md5"`
	SHA1    []string `json:"sha1"`
	SHA256  []string `json:"sha256"`
	CVEs    []string `json:"cves"`
	CIDRs   []string `json:"cidrs,omitempty"`
}

// Thread holds what threads the message to an incident.
type Thread struct {
	Ticket        *string  `json:"ticket"`
	InReplyTo     string   `json:"in_reply_to"`
	References    []string `json:"references"`
	PartnerTicket string   `json:"partner_ticket,omitempty"`
	Partner       string   `json:"partner,omitempty"`
}

// Ack is the RFC 3834 decision.
type Ack struct {
	Send   bool   `json:"send"`
	Reason string `json:"reason"`
}

// Attachment describes one non-text part.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// Structured carries what a machine-readable report said.
type Structured struct {
	Format     string            `json:"format"` // arf | x-arf | iodef | csv
	Fields     map[string]string `json:"fields"`
	SourceIPs  []string          `json:"source_ips,omitempty"`
	Timestamps []string          `json:"timestamps,omitempty"`
	scan       string            // indicator-bearing fields, one per line
	text       string            // the part as written, appended to the report text
}
