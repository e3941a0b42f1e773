package vocab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Ticket is an incident's ticket ID, PREFIX#YYYY-NNNNNN: sequential per
// year, the number at least six digits.
type Ticket struct {
	Prefix string
	Year   int
	Seq    int
}

// String formats the ticket: CSIRT#2026-000123.
func (t Ticket) String() string { return fmt.Sprintf("%s#%d-%06d", t.Prefix, t.Year, t.Seq) }

// Slug is the ticket in a Message-ID's left side: csirt-2026-000123.
func (t Ticket) Slug() string {
	return strings.ToLower(fmt.Sprintf("%s-%d-%06d", t.Prefix, t.Year, t.Seq))
}

// ticketRE is a ticket in text; the prefix is checked by the caller.
var ticketRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_-]{0,31})#(\d{4})-(\d+)`)

// ParseTicket reads a whole ticket ID.
func ParseTicket(s string) (Ticket, bool) {
	m := ticketRE.FindStringSubmatchIndex(s)
	if m == nil || m[0] != 0 || m[1] != len(s) {
		return Ticket{}, false
	}
	year, _ := strconv.Atoi(s[m[4]:m[5]])
	seq, err := strconv.Atoi(s[m[6]:m[7]])
	if err != nil {
		return Ticket{}, false
	}
	return Ticket{Prefix: s[m[2]:m[3]], Year: year, Seq: seq}, true
}

// FindTicket returns the first ticket with prefix (in any letter case, as
// mail clients change it) in text, with the prefix as given.
func FindTicket(text, prefix string) (Ticket, bool) {
	re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(prefix) + `#(\d{4})-(\d{6})`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return Ticket{}, false
	}
	year, _ := strconv.Atoi(m[1])
	seq, _ := strconv.Atoi(m[2])
	return Ticket{Prefix: prefix, Year: year, Seq: seq}, true
}

// Status is where an incident stands.
type Status string

// Incident statuses: new (filed, nobody has looked), open (in hand),
// stalled (waiting for someone outside the team), resolved, rejected (not
// an incident).
const (
	StatusNew      Status = "new"
	StatusOpen     Status = "open"
	StatusStalled  Status = "stalled"
	StatusResolved Status = "resolved"
	StatusRejected Status = "rejected"
)

// Statuses are every status, in the order of an incident's life.
var Statuses = []Status{StatusNew, StatusOpen, StatusStalled, StatusResolved, StatusRejected}

// ParseStatus reads a status.
func ParseStatus(s string) (Status, bool) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// IndicatorKind is the kind of an indicator in the store and the API.
// Priority is an incident's triage priority, P1 (most urgent) to P4.
type Priority string

// Priorities, most urgent first.
var Priorities = []Priority{"P1", "P2", "P3", "P4"}

// ParsePriority reads P1-P4 (case-insensitive).
func ParsePriority(s string) (Priority, bool) {
	p := Priority(strings.ToUpper(strings.TrimSpace(s)))
	for _, q := range Priorities {
		if p == q {
			return p, true
		}
	}
	return "", false
}

type IndicatorKind string

// Indicator kinds.
const (
	IPv4   IndicatorKind = "ipv4"
	IPv6   IndicatorKind = "ipv6"
	Domain IndicatorKind = "domain"
	URL    IndicatorKind = "url"
	Email  IndicatorKind = "email"
	MD5    IndicatorKind = "md5"
	SHA1   IndicatorKind = "sha1"
	SHA256 IndicatorKind = "sha256"
	CVE    IndicatorKind = "cve"
	CIDR   IndicatorKind = "cidr"
)

// DecStatus is a decryption verdict.
type DecStatus string

// Decryption verdicts.
const (
	DecNone          DecStatus = "none"
	DecOK            DecStatus = "ok"
	DecCannotDecrypt DecStatus = "cannot-decrypt"
	DecRefused       DecStatus = "refused"
)

// SigStatus is a signature verdict.
type SigStatus string

// Signature verdicts.
const (
	SigNone       SigStatus = "none"
	SigGood       SigStatus = "good"
	SigBad        SigStatus = "bad"
	SigUnknownKey SigStatus = "unknown-key"
	SigExpired    SigStatus = "expired"
	SigRevoked    SigStatus = "revoked"
)

// SigScope is what a signature covers: the whole message, or a part of it
// (a clearsigned block among other text, one part of several), which
// vouches for nothing else.
type SigScope string

// Signature scopes.
const (
	ScopeWhole SigScope = "whole"
	ScopePart  SigScope = "part"
)

// TLP is a Traffic Light Protocol label (2.0).
type TLP string

// TLP labels, least restricted first.
const (
	TLPClear       TLP = "clear"
	TLPGreen       TLP = "green"
	TLPAmber       TLP = "amber"
	TLPAmberStrict TLP = "amber+strict"
	TLPRed         TLP = "red"
)

// Rank orders labels by restriction (0 for none or unknown).
func (t TLP) Rank() int {
	switch t {
	case TLPClear:
		return 1
	case TLPGreen:
		return 2
	case TLPAmber:
		return 3
	case TLPAmberStrict:
		return 4
	case TLPRed:
		return 5
	}
	return 0
}

// ParseTLP reads a label as reports write it ("TLP:AMBER", "white" for
// the old name of clear); ok is false for anything else.
func ParseTLP(s string) (TLP, bool) {
	s = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TLP:")))
	if s == "white" {
		return TLPClear, true
	}
	t := TLP(s)
	return t, t.Rank() > 0
}
