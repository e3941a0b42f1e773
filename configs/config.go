package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. YAML keys are fixed by
// shared/interface.md; keys beyond it are documented in example.yaml.
type Config struct {
	Team     Team     `yaml:"team"`
	Store    Store    `yaml:"store"`
	Intake   Intake   `yaml:"intake"`
	Crypto   Crypto   `yaml:"crypto"`
	Parse    Parse    `yaml:"parse"`
	Pipeline Pipeline `yaml:"pipeline"`
	Notify   Notify   `yaml:"notify"`
	HTTP     HTTP     `yaml:"http"`
	// Auth configures sender authentication (DKIM, SPF, DMARC).
	Auth Auth `yaml:"auth"`
	// Constituency names the constituents whose systems reports are
	// matched against, and how their notices are aggregated.
	Constituency Constituency `yaml:"constituency"`

	// Path is the file the configuration was read from ("" for defaults).
	Path string `yaml:"-"`
	// keyLine is the line of each key in the file it was decoded from
	// (dotted path, as Problem.Key), so that Validate names it.
	keyLine map[string]int
	source  string
}

// Team is the point of contact, also the source of the RFC 2350 profile.
type Team struct {
	Name         string   `yaml:"name"`
	Address      string   `yaml:"address"`
	TicketPrefix string   `yaml:"ticket_prefix"`
	PublicURL    string   `yaml:"public_url"`
	Timezone     string   `yaml:"timezone"`
	Languages    []string `yaml:"languages"`
	Phone        string   `yaml:"phone"`
	// PostalAddress is RFC 2350's section 2.2.
	PostalAddress string `yaml:"postal_address"`
	Hours         string `yaml:"hours"`
	Constituency  string `yaml:"constituency"`
	// Further RFC 2350 fields; a missing one is rendered as "not stated".
	Mission      string   `yaml:"mission"`
	Sponsorship  string   `yaml:"sponsorship"`
	Authority    string   `yaml:"authority"`
	Members      []string `yaml:"members"`
	OtherInfo    string   `yaml:"other_info"`
	Services     []string `yaml:"services"`
	Disclosure   string   `yaml:"disclosure"`
	ReportingURL string   `yaml:"reporting_url"`
	Disclaimer   string   `yaml:"disclaimer"`
	// SecurityTxtExpires fixes security.txt's Expires (YYYY-MM-DD or RFC
	// 3339); config check warns 30 days before it. Empty: 180 days after
	// each request, so the file never goes stale unattended.
	SecurityTxtExpires string `yaml:"security_txt_expires"`
	// Ja holds Japanese texts of the free-text fields for the Japanese
	// RFC 2350 rendering (/rfc2350.ja.txt, rfc2350 --lang ja); a field left
	// empty falls back to the English one.
	Ja TeamTexts `yaml:"ja"`
}

// TeamTexts are the free-text RFC 2350 fields in one more language.
type TeamTexts struct {
	Name          string   `yaml:"name"`
	PostalAddress string   `yaml:"postal_address"`
	Hours         string   `yaml:"hours"`
	Constituency  string   `yaml:"constituency"`
	Mission       string   `yaml:"mission"`
	Sponsorship   string   `yaml:"sponsorship"`
	Authority     string   `yaml:"authority"`
	OtherInfo     string   `yaml:"other_info"`
	Services      []string `yaml:"services"`
	Disclosure    string   `yaml:"disclosure"`
	Disclaimer    string   `yaml:"disclaimer"`
}

// ParseExpires reads SecurityTxtExpires (zero time when empty).
func (t Team) ParseExpires() (time.Time, error) {
	if t.SecurityTxtExpires == "" {
		return time.Time{}, nil
	}
	if v, err := time.Parse(time.RFC3339, t.SecurityTxtExpires); err == nil {
		return v, nil
	}
	return time.Parse("2006-01-02", t.SecurityTxtExpires)
}

// MissingRFC2350 lists the team fields the RFC 2350 profile cannot do
// without, by configuration key. config check fails on each.
func (t Team) MissingRFC2350() []string {
	var out []string
	for _, f := range []struct{ key, v string }{
		{"team.name", t.Name}, {"team.address", t.Address}, {"team.timezone", t.Timezone},
		{"team.constituency", t.Constituency}, {"team.public_url", t.PublicURL},
	} {
		if strings.TrimSpace(f.v) == "" {
			out = append(out, f.key)
		}
	}
	return out
}

// Store selects and tunes the store driver.
type Store struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
	// DSNFile, when set, holds the DSN (for DSNs carrying a password).
	DSNFile string `yaml:"dsn_file"`
}

// Intake holds the listeners and pollers.
type Intake struct {
	SMTP       SMTP       `yaml:"smtp"`
	LMTP       LMTP       `yaml:"lmtp"`
	IMAP       []IMAP     `yaml:"imap"`
	Submission Submission `yaml:"submission"`
}

// Submission is the optional staff listener (port 587 style): AUTH PLAIN or
// LOGIN, offered only after STARTTLS with intake.smtp's certificate, is
// required before MAIL. It takes mail for the same recipients.
type Submission struct {
	Listen          string `yaml:"listen"`
	CredentialsFile string `yaml:"credentials_file"` // USER bcrypt-or-argon2id-hash per line
}

// SMTP is the public listener.
type SMTP struct {
	Listen          string   `yaml:"listen"`
	Recipients      []string `yaml:"recipients"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
	Hostname        string   `yaml:"hostname"`
	TLSCertFile     string   `yaml:"tls_cert_file"`
	TLSKeyFile      string   `yaml:"tls_key_file"`
	Disabled        bool     `yaml:"disabled"`
	// Limits, so that one slow or abusive client cannot starve the others.
	MaxConnections           int           `yaml:"max_connections"`
	MaxConnectionsPerIP      int           `yaml:"max_connections_per_ip"`
	MaxRecipients            int           `yaml:"max_recipients"`
	MaxMessagesPerConnection int           `yaml:"max_messages_per_connection"`
	Timeout                  time.Duration `yaml:"timeout"`
	// What one client may hold (intake.ConnLimits says each in full).
	IPv6PrefixLength int           `yaml:"ipv6_prefix_length"`
	BusyTimeout      time.Duration `yaml:"busy_timeout"`
	ProgressTimeout  time.Duration `yaml:"progress_timeout"`
	MaxJunkCommands  int           `yaml:"max_junk_commands"`
	MaxSessionTime   time.Duration `yaml:"max_session_time"`
	MinDataRate      int64         `yaml:"min_data_rate"`
	MaxAuthFailures  int           `yaml:"max_auth_failures"`
	// SpillDir holds messages over 1 MiB while they arrive.
	SpillDir string `yaml:"spill_dir"`
}

// LMTP is the listener behind an MTA.
type LMTP struct {
	Listen string `yaml:"listen"`
}

// OAuth2 is an account's OAuth2 client (auth: oauth2).
type OAuth2 struct {
	// Provider fills in the endpoints and scopes: microsoft (with
	// Tenant), google, or "" (give TokenURL).
	Provider      string   `yaml:"provider"`
	Tenant        string   `yaml:"tenant"`
	TokenURL      string   `yaml:"token_url"`
	DeviceAuthURL string   `yaml:"device_auth_url"`
	ClientID      string   `yaml:"client_id"`
	Scopes        []string `yaml:"scopes"`
	// ClientSecretFile alone: the client-credentials grant (app-only).
	// RefreshTokenFile: the refresh-token grant, seeded from the file;
	// with neither, the refresh token comes from madoguchi oauth2 login.
	// Grant: refresh_token lets a client secret go with the
	// refresh-token grant (Google's clients have one).
	ClientSecretFile string `yaml:"client_secret_file"`
	RefreshTokenFile string `yaml:"refresh_token_file"`
	Grant            string `yaml:"grant"`
}

// ClientCredentials tells whether the account uses the client-credentials
// grant (else the refresh-token grant).
func (o *OAuth2) ClientCredentials() bool {
	switch o.Grant {
	case "client_credentials":
		return true
	case "refresh_token":
		return false
	}
	return o.ClientSecretFile != "" && o.RefreshTokenFile == ""
}

// IMAP is one polled mailbox.
type IMAP struct {
	Address      string `yaml:"address"`
	TLS          string `yaml:"tls"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// Auth: password (default) | oauth2, with OAuth2.
	Auth    string  `yaml:"auth"`
	OAuth2  *OAuth2 `yaml:"oauth2"`
	Mailbox string  `yaml:"mailbox"`
	// ProcessedMailbox receives each message once it is spooled; empty:
	// messages stay in Mailbox and are flagged \Seen.
	ProcessedMailbox string `yaml:"processed_mailbox"`
	// PollInterval is the polling period without IDLE (default 1m).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Crypto names the team's keys and the keyring of correspondents.
type Crypto struct {
	TeamKeyFiles          []string `yaml:"team_key_files"`
	TeamKeyPassphraseFile string   `yaml:"team_key_passphrase_file"`
	KeyringFile           string   `yaml:"keyring_file"`
	MaxDecompressedBytes  int64    `yaml:"max_decompressed_bytes"`
	// SMIME is the team's S/MIME certificate and key and the trust anchors
	// of correspondents' certificates.
	SMIME SMIME `yaml:"smime"`
}

// SMIME names the S/MIME files (PEM).
type SMIME struct {
	CertFile          string `yaml:"cert_file"` // the team's certificate, its chain after it
	KeyFile           string `yaml:"key_file"`
	KeyPassphraseFile string `yaml:"key_passphrase_file"`
	TrustAnchorsFile  string `yaml:"trust_anchors_file"` // CA certificates correspondents' chains must end in
}

// OIDC is an OpenID Connect provider staff sign in with.
type OIDC struct {
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"` // "" for a public client (PKCE alone)
	RedirectURL      string   `yaml:"redirect_url"`       // https://HOST/staff/oidc/callback
	Staff            []string `yaml:"staff"`              // verified e-mail addresses that may sign in
}

// Auth configures sender authentication.
type Auth struct {
	// DNSResolver is host:port of the DNS server the checks ask; "": the
	// system's.
	DNSResolver string `yaml:"dns_resolver"`
	// TrustedAuthservIDs are the authserv-ids (RFC 8601) of the MTAs in
	// front of LMTP, IMAP and import whose Authentication-Results headers
	// are believed for SPF and DMARC.
	TrustedAuthservIDs []string `yaml:"trusted_authserv_ids"`
	// Disabled turns the checks off (no DNS at all; nothing is
	// authenticated, so no From is taken for forged either).
	Disabled bool `yaml:"disabled"`
}

// Constituency is where the constituents are and how they are told.
type Constituency struct {
	// File is the constituents file (YAML; see the constituency package
	// and README "Constituency"); "" matches nothing and sends no notice.
	File string `yaml:"file"`
	// ASNFile is an IP-range-to-ASN table (TSV: range start, range end,
	// AS number, …) so that constituents' asns match without a lookup.
	ASNFile string `yaml:"asn_file"`
	// AggregateWindow is how long a constituent's first waiting match
	// waits for more before its notice goes (0: at the next pass).
	AggregateWindow time.Duration `yaml:"aggregate_window"`
}

// Parse tunes the parser.
type Parse struct {
	// PartnerTags maps partner ticket-ID patterns (regular expressions) to
	// partner names, e.g. {name: JPCERT, pattern: 'JPCERT#[0-9]+'}.
	PartnerTags []PartnerTag `yaml:"partner_tags"`
	// RulesFile extends the built-in classification rules (YAML).
	RulesFile string `yaml:"rules_file"`
}

// PartnerTag is one partner ticket-ID pattern.
type PartnerTag struct {
	Name    string `yaml:"name"`
	Pattern string `yaml:"pattern"`
}

// Pipeline tunes the processing workers.
type Pipeline struct {
	// Workers claim, parse and file; 0 means automatic: as many as the
	// cores Go uses, at least two (one parses while another is in the
	// store). More workers than that only contend for the store and the
	// CPU that intake needs (docs/benchmarks.md).
	Workers int `yaml:"workers"`
	// ParseConcurrency bounds how many workers decrypt and parse at once
	// (CPU-bound work); 0 means one less than the cores Go uses (at least
	// one), so that intake always finds a core free: a 250 must not wait
	// behind parsing, which can wait.
	ParseConcurrency int           `yaml:"parse_concurrency"`
	MaxAttempts      int           `yaml:"max_attempts"`
	Lease            time.Duration `yaml:"lease"`
	// Enabled false makes `serve` an intake-only daemon: it spools and
	// acknowledges with 250 as always but files nothing, leaving the
	// shared queue to daemons that run workers (several daemons on one
	// PostgreSQL: intake at the edge, filing inside). It is also how
	// intake alone is measured (docs/benchmarks.md).
	Enabled bool `yaml:"enabled"`
}

// WorkerCount is Workers, with 0 resolved for this machine.
func (p Pipeline) WorkerCount() int {
	if p.Workers > 0 {
		return p.Workers
	}
	return max(2, runtime.GOMAXPROCS(0))
}

// Notify configures acknowledgements.
type Notify struct {
	Relay     string `yaml:"relay"`
	OutboxDir string `yaml:"outbox_dir"`
	// RelayTLS: "" (STARTTLS when offered), starttls (required), implicit, none.
	RelayTLS          string `yaml:"relay_tls"`
	RelayUsername     string `yaml:"relay_username"`
	RelayPasswordFile string `yaml:"relay_password_file"`
	// RelayAuth: password (default) | oauth2, with RelayOAuth2.
	RelayAuth   string  `yaml:"relay_auth"`
	RelayOAuth2 *OAuth2 `yaml:"relay_oauth2"`
	// RelayCAFile: PEM certificates to trust for the relay's TLS besides
	// the system's roots (a site relay with an internal CA).
	RelayCAFile string `yaml:"relay_ca_file"`
	// TemplatesDir holds ack.en.txt / ack.ja.txt overriding the built-in ones.
	TemplatesDir string `yaml:"templates_dir"`
	// JapaneseCharset: utf-8 (default) or iso-2022-jp.
	JapaneseCharset string `yaml:"japanese_charset"`
	// RatePerHour caps acknowledgements to one address per hour.
	RatePerHour int `yaml:"rate_per_hour"`
	// RatePerDomainPerHour and RateGlobalPerHour cap acknowledgements to
	// one domain and in all; SubaddressSeparators are the characters that
	// start a sub-address ("+", or "+-"), counted with their address.
	RatePerDomainPerHour int    `yaml:"rate_per_domain_per_hour"`
	RateGlobalPerHour    int    `yaml:"rate_global_per_hour"`
	SubaddressSeparators string `yaml:"subaddress_separators"`
	// MaxAttempts before an outbound message is a dead letter.
	MaxAttempts int `yaml:"max_attempts"`
	// FollowUp: what a reporter gets for a message joining an open
	// ticket: "none" (default) or "note" (a short "added to TICKET").
	FollowUp string `yaml:"followup"`
	Alert    Alert  `yaml:"alert"`
}

// Alert sends staff a message and/or a webhook for new incidents of the
// listed classifications ("taxonomy" or "taxonomy/type").
type Alert struct {
	Classifications   []string `yaml:"classifications"`
	DutyAddress       string   `yaml:"duty_address"`
	WebhookURL        string   `yaml:"webhook_url"`
	WebhookSecretFile string   `yaml:"webhook_secret_file"`
	// Internal marks the duty address and the webhook as inside the
	// team: only then do they carry the subject of an encrypted report
	// in clear (an alert mail to a duty address whose key is known goes
	// encrypted and carries it anyway).
	Internal bool `yaml:"internal"`
}

// HTTP is the metrics/health/public listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// StaffTokensFile holds the staff API's bearer tokens as hashes, one
	// "NAME sha256:HEX" (madoguchi token new) or "NAME $2y$..." per line.
	// Without it every staff request is refused (401).
	StaffTokensFile string `yaml:"staff_tokens_file"`
	// Pprof serves Go's profiler at /debug/pprof/ (to loopback clients or
	// with a staff token, like /metrics). Off by default: behind a reverse
	// proxy on the same host every client looks like loopback, and a
	// profile costs CPU on demand.
	Pprof bool `yaml:"pprof"`
	// MaxConnections at once (further clients wait in the kernel's
	// queue, holding none of the descriptors SMTP and the store need);
	// the timeouts free connections that stall or idle.
	MaxConnections int           `yaml:"max_connections"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`  // a whole request, its header within min(10s, this)
	WriteTimeout   time.Duration `yaml:"write_timeout"` // a whole response
	IdleTimeout    time.Duration `yaml:"idle_timeout"`  // a keep-alive connection between requests
	// OIDC, when set, lets staff sign in with an OpenID Connect provider.
	OIDC *OIDC `yaml:"oidc"`
	// SessionTTL is how long a staff sign-in from a browser lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// BehindTLSProxy: the listener is reached through a TLS-terminating
	// proxy, so session cookies are marked Secure although the request
	// came in plain HTTP.
	BehindTLSProxy bool `yaml:"behind_tls_proxy"`
}

//go:embed default.yaml
var defaultYAML []byte

// Defaults returns the built-in configuration that `madoguchi serve` runs on
// when no file is given.
func Defaults() *Config {
	var c Config
	if err := yaml.Unmarshal(defaultYAML, &c); err != nil {
		panic("configs: embedded default.yaml is invalid: " + err.Error())
	}
	return &c
}

// DefaultYAML returns the embedded default configuration text.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Error is a configuration error naming the file, line and key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

// Errors are every configuration error of one file, one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + printable(e.Key, true))
	}
	b.WriteString(": " + printable(e.Msg, false))
	return b.String()
}

// printable keeps an error on one readable line: a key holding a space or
// anything unprintable (YAML lets a quoted key hold newlines) is shown
// quoted, and a message's unprintable characters are escaped.
func printable(s string, key bool) string {
	odd := strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) || (key && r == ' ')
	})
	if !odd {
		return s
	}
	if key {
		return strconv.Quote(s)
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

var lineRE = regexp.MustCompile(`(?s)line (\d+): (.*)`)
var unknownFieldRE = regexp.MustCompile(`(?s)^field (.+) not found in type`)

// nextEntryRE finds where yaml's next "line N:" entry starts; an entry may
// itself span lines when a key holds newlines.
var nextEntryRE = regexp.MustCompile(`\n\s*line \d+: `)

// Load reads the file at path strictly over the defaults. Relative paths in
// the result are resolved against the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + errors.Unwrap(err).Error()}
	}
	c, err := Decode(path, data)
	if c != nil {
		c.Path = path
		c.resolvePaths(filepath.Dir(path))
	}
	return c, err
}

// Decode decodes data (named name in errors) strictly over the defaults.
// The error is Errors, every problem yaml found; when the file is valid
// YAML the configuration is returned with it, as decoded around the
// problems, so that Validate can report the rest in the same run.
func Decode(name string, data []byte) (*Config, error) {
	c := Defaults()
	c.source = name
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErrors(name, err, nil)
	}
	lines := map[int]string{}
	keyLines(&root, "", lines)
	c.keyLine = map[string]int{}
	for l, k := range lines {
		if old, ok := c.keyLine[k]; !ok || l < old {
			c.keyLine[k] = l
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return c, yamlErrors(name, err, lines)
	}
	return c, nil
}

// yamlErrors turns yaml's message, which lists one entry per problem,
// into Errors, each on one line naming file, line and key.
func yamlErrors(name string, err error, lines map[int]string) Errors {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var out Errors
	for msg != "" {
		entry, rest := msg, ""
		if i := nextEntryRE.FindStringIndex(msg); i != nil && i[0] > 0 {
			entry, rest = msg[:i[0]], msg[i[0]:]
		}
		if e := yamlError(name, strings.TrimSpace(entry), lines); e != nil {
			out = append(out, e)
		}
		msg = strings.TrimLeft(rest, " \t\n")
	}
	if len(out) == 0 {
		out = append(out, &Error{File: name, Msg: "invalid YAML"})
	}
	return out
}

// yamlError reads one entry of yaml's message.
func yamlError(name, entry string, lines map[int]string) *Error {
	if entry == "" {
		return nil
	}
	e := &Error{File: name, Msg: entry}
	if m := lineRE.FindStringSubmatch(entry); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
		key := lines[e.Line]
		if u := unknownFieldRE.FindStringSubmatch(e.Msg); u != nil {
			e.Msg = "unknown key"
			if key == "" {
				key = u[1]
			}
		} else if strings.HasPrefix(e.Msg, "cannot unmarshal") {
			e.Msg = "wrong type: " + e.Msg
		}
		e.Key = key
	}
	return e
}

// keyLines records, for every mapping key and sequence item, its dotted path
// by line, so decoder errors (which know only lines) can name the key.
func keyLines(n *yaml.Node, prefix string, out map[int]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyLines(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			out[k.Line] = p // deeper keys overwrite their parents' value lines
			if v.Line != k.Line {
				if _, ok := out[v.Line]; !ok {
					out[v.Line] = p
				}
			}
			keyLines(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if _, ok := out[c.Line]; !ok {
				out[c.Line] = p
			}
			keyLines(c, p, out)
		}
	}
}

// resolveRelative finds the file a relative path p in a configuration file
// in dir means. The file's directory comes first, so a configuration moved
// with its keys keeps working wherever the daemon is started. Tools that write
// a configuration for the directory they run in (the corpus checker writes
// "../shared/corpus/keys/..." into a file under its work directory) mean the
// working directory instead: when nothing of p exists beside the file (neither
// p nor its parent directory) but p or its parent exists from the working
// directory, that is the one taken.
func resolveRelative(dir, p string) string {
	there := filepath.Join(dir, p)
	if exists(there) || exists(filepath.Dir(there)) {
		return there
	}
	if exists(p) || exists(filepath.Dir(p)) {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
	}
	return there
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && !strings.Contains(*p, "://") {
			*p = resolveRelative(dir, *p)
		}
	}
	if c.Store.Driver == "sqlite" {
		abs(&c.Store.DSN)
	}
	abs(&c.Store.DSNFile)
	for i := range c.Crypto.TeamKeyFiles {
		abs(&c.Crypto.TeamKeyFiles[i])
	}
	abs(&c.Crypto.TeamKeyPassphraseFile)
	abs(&c.Crypto.KeyringFile)
	abs(&c.Crypto.SMIME.CertFile)
	abs(&c.Crypto.SMIME.KeyFile)
	abs(&c.Crypto.SMIME.KeyPassphraseFile)
	abs(&c.Crypto.SMIME.TrustAnchorsFile)
	abs(&c.Parse.RulesFile)
	abs(&c.Constituency.File)
	abs(&c.Constituency.ASNFile)
	abs(&c.Notify.OutboxDir)
	abs(&c.Intake.SMTP.TLSCertFile)
	abs(&c.Intake.SMTP.TLSKeyFile)
	abs(&c.Intake.SMTP.SpillDir)
	if strings.HasPrefix(c.Intake.LMTP.Listen, "unix:") {
		p := strings.TrimPrefix(c.Intake.LMTP.Listen, "unix:")
		abs(&p)
		c.Intake.LMTP.Listen = "unix:" + p
	}
	abs(&c.Notify.RelayPasswordFile)
	abs(&c.Notify.RelayCAFile)
	abs(&c.Notify.TemplatesDir)
	abs(&c.Intake.Submission.CredentialsFile)
	abs(&c.HTTP.StaffTokensFile)
	if c.HTTP.OIDC != nil {
		abs(&c.HTTP.OIDC.ClientSecretFile)
	}
	abs(&c.Notify.Alert.WebhookSecretFile)
	for i := range c.Intake.IMAP {
		abs(&c.Intake.IMAP[i].PasswordFile)
		if o := c.Intake.IMAP[i].OAuth2; o != nil {
			abs(&o.ClientSecretFile)
			abs(&o.RefreshTokenFile)
		}
	}
	if o := c.Notify.RelayOAuth2; o != nil {
		abs(&o.ClientSecretFile)
		abs(&o.RefreshTokenFile)
	}
}

// Problem is one finding of Validate.
type Problem struct {
	Key     string
	Msg     string
	Warning bool   // a warning never stops the daemon
	File    string // the file the key came from ("" for the defaults)
	Line    int    // its line there (0 when the key is not in the file)
}

func (p Problem) String() string {
	kind := "error"
	if p.Warning {
		kind = "warning"
	}
	return kind + ": " + p.Where()
}

// Where is the problem as "FILE:LINE: key: msg", as much as is known.
func (p Problem) Where() string {
	loc := ""
	if p.File != "" {
		loc = p.File + ":"
		if p.Line > 0 {
			loc += strconv.Itoa(p.Line) + ":"
		}
		loc += " "
	}
	return fmt.Sprintf("%s%s: %s", loc, printable(p.Key, true), printable(p.Msg, false))
}

// locate fills in where each problem's key is in the file: its own line,
// or the nearest enclosing key's (a missing key is reported at its
// section).
func (c *Config) locate(ps []Problem) []Problem {
	file := c.Path
	if file == "" {
		file = c.source
	}
	for i := range ps {
		ps[i].File = file
		for k := ps[i].Key; k != "" && ps[i].Line == 0; {
			ps[i].Line = c.keyLine[k]
			j := strings.LastIndexAny(k, ".[")
			if j < 0 {
				break
			}
			k = k[:j]
		}
	}
	return ps
}

// Validate reports every problem, errors and warnings, not just the first,
// each with the file and line of its key.
func (c *Config) Validate() []Problem { return c.locate(c.validate()) }

func (c *Config) validate() []Problem {
	var ps []Problem
	bad := func(k, m string) { ps = append(ps, Problem{Key: k, Msg: m}) }
	warn := func(k, m string) { ps = append(ps, Problem{Key: k, Msg: m, Warning: true}) }
	if c.Team.Name == "" {
		bad("team.name", "missing")
	}
	if _, err := mail.ParseAddress(c.Team.Address); err != nil {
		bad("team.address", "not an e-mail address")
	}
	if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`).MatchString(c.Team.TicketPrefix) {
		bad("team.ticket_prefix", "must be letters, digits, '-' or '_', starting with a letter")
	}
	if c.Team.Timezone != "" {
		if _, err := time.LoadLocation(c.Team.Timezone); err != nil {
			bad("team.timezone", "unknown time zone")
		}
	}
	if exp, err := c.Team.ParseExpires(); err != nil {
		bad("team.security_txt_expires", "want YYYY-MM-DD or RFC 3339")
	} else if !exp.IsZero() {
		switch left := time.Until(exp); {
		case left <= 0:
			bad("team.security_txt_expires", "is in the past: security.txt would be expired (RFC 9116)")
		case left < 30*24*time.Hour:
			warn("team.security_txt_expires", fmt.Sprintf("expires in %d days: renew it", int(left.Hours()/24)))
		case left > 366*24*time.Hour:
			warn("team.security_txt_expires", "more than a year ahead (RFC 9116 advises less)")
		}
	}
	for _, f := range c.Team.UnstatedRFC2350() {
		warn("team."+f, "RFC 2350 field not stated")
	}
	switch c.Store.Driver {
	case "sqlite", "postgres":
	default:
		bad("store.driver", "must be sqlite or postgres")
	}
	if c.Store.DSN == "" && c.Store.DSNFile == "" {
		bad("store.dsn", "missing")
	}
	for i, r := range c.Intake.SMTP.Recipients {
		if _, err := mail.ParseAddress(r); err != nil {
			bad(fmt.Sprintf("intake.smtp.recipients[%d]", i), "not an e-mail address")
		}
	}
	if c.Intake.SMTP.MaxMessageBytes <= 0 {
		bad("intake.smtp.max_message_bytes", "must be positive")
	}
	if sub := c.Intake.Submission; sub.Listen != "" {
		if sub.CredentialsFile == "" {
			bad("intake.submission.credentials_file", "missing (the submission listener needs users)")
		}
		if c.Intake.SMTP.TLSCertFile == "" {
			bad("intake.submission.listen", "needs intake.smtp.tls_cert_file and tls_key_file: AUTH is offered only after STARTTLS")
		}
	}
	if (c.Intake.SMTP.TLSCertFile == "") != (c.Intake.SMTP.TLSKeyFile == "") {
		bad("intake.smtp.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for i, m := range c.Intake.IMAP {
		k := fmt.Sprintf("intake.imap[%d]", i)
		if m.Address == "" {
			bad(k+".address", "missing")
		}
		switch m.TLS {
		case "implicit", "starttls":
		case "none":
			if !isLoopback(m.Address) {
				bad(k+".tls", "none is allowed on loopback only")
			}
		default:
			bad(k+".tls", "must be implicit, starttls or none")
		}
		switch m.Auth {
		case "", "password":
			if m.PasswordFile == "" {
				bad(k+".password_file", "missing")
			}
		case "oauth2":
			ps = append(ps, validateOAuth2(k+".oauth2", m.OAuth2)...)
		default:
			bad(k+".auth", "must be password or oauth2")
		}
		if m.Mailbox == "" {
			bad(k+".mailbox", "missing")
		}
	}
	for i, p := range c.Parse.PartnerTags {
		if _, err := regexp.Compile(p.Pattern); err != nil {
			bad(fmt.Sprintf("parse.partner_tags[%d].pattern", i), "invalid regular expression")
		}
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"max_connections", c.Intake.SMTP.MaxConnections}, {"max_connections_per_ip", c.Intake.SMTP.MaxConnectionsPerIP},
		{"max_recipients", c.Intake.SMTP.MaxRecipients}, {"max_messages_per_connection", c.Intake.SMTP.MaxMessagesPerConnection}} {
		if l.v < 1 {
			bad("intake.smtp."+l.key, "must be at least 1")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"timeout", c.Intake.SMTP.Timeout}, {"busy_timeout", c.Intake.SMTP.BusyTimeout}, {"progress_timeout", c.Intake.SMTP.ProgressTimeout},
		{"max_session_time", c.Intake.SMTP.MaxSessionTime}} {
		if d.v < time.Second {
			bad("intake.smtp."+d.key, "must be at least 1s")
		}
	}
	if p := c.Intake.SMTP.IPv6PrefixLength; p < 1 || p > 128 {
		bad("intake.smtp.ipv6_prefix_length", "must be 1 to 128")
	}
	if c.Intake.SMTP.MaxJunkCommands < 1 {
		bad("intake.smtp.max_junk_commands", "must be at least 1")
	}
	if c.Intake.SMTP.MinDataRate < 1 {
		bad("intake.smtp.min_data_rate", "must be at least 1 (bytes a second)")
	}
	if c.Intake.SMTP.MaxAuthFailures < 1 {
		bad("intake.smtp.max_auth_failures", "must be at least 1")
	}
	for _, k := range c.Team.MissingRFC2350() {
		bad(k, "missing (the RFC 2350 profile needs it)")
	}
	if c.Pipeline.ParseConcurrency < 0 {
		bad("pipeline.parse_concurrency", "must be 0 (automatic) or more")
	}
	if c.Pipeline.Workers < 0 {
		bad("pipeline.workers", "must be 0 (automatic) or more")
	}
	if c.Pipeline.MaxAttempts < 1 {
		bad("pipeline.max_attempts", "must be at least 1")
	}
	if c.Pipeline.Lease < time.Second {
		bad("pipeline.lease", "must be at least 1s")
	}
	switch c.Notify.RelayAuth {
	case "", "password":
	case "oauth2":
		if c.Notify.Relay == "" {
			bad("notify.relay_auth", "oauth2 needs notify.relay")
		}
		if c.Notify.RelayUsername == "" {
			bad("notify.relay_username", "missing (the account the token is for)")
		}
		ps = append(ps, validateOAuth2("notify.relay_oauth2", c.Notify.RelayOAuth2)...)
	default:
		bad("notify.relay_auth", "must be password or oauth2")
	}
	switch c.Notify.RelayTLS {
	case "", "starttls", "implicit", "none":
	default:
		bad("notify.relay_tls", "must be starttls, implicit or none (empty: STARTTLS when offered)")
	}
	switch strings.ToLower(c.Notify.JapaneseCharset) {
	case "", "utf-8", "iso-2022-jp":
	default:
		bad("notify.japanese_charset", "must be utf-8 or iso-2022-jp")
	}
	switch c.Notify.FollowUp {
	case "", "none", "note":
	default:
		bad("notify.followup", "must be none or note")
	}
	if a := c.Notify.Alert; len(a.Classifications) > 0 && a.DutyAddress == "" && a.WebhookURL == "" {
		bad("notify.alert", "classifications need a duty_address or a webhook_url")
	}
	if u := c.Notify.Alert.WebhookURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		bad("notify.alert.webhook_url", "must be an http(s) URL")
	}
	for _, r := range []struct {
		key string
		v   int
	}{{"rate_per_hour", c.Notify.RatePerHour}, {"rate_per_domain_per_hour", c.Notify.RatePerDomainPerHour}, {"rate_global_per_hour", c.Notify.RateGlobalPerHour}} {
		if r.v < 0 {
			bad("notify."+r.key, "must not be negative")
		}
	}
	if strings.Trim(c.Notify.SubaddressSeparators, "+-") != "" {
		bad("notify.subaddress_separators", `"+", "-" or "+-"`)
	}
	if c.Notify.MaxAttempts < 0 {
		bad("notify.max_attempts", "must not be negative")
	}
	if o := c.HTTP.OIDC; o != nil {
		for _, u := range []struct{ key, v string }{{"issuer", o.Issuer}, {"redirect_url", o.RedirectURL}} {
			if !strings.HasPrefix(u.v, "https://") && !(strings.HasPrefix(u.v, "http://") && isLoopbackURL(u.v)) {
				bad("http.oidc."+u.key, "an https URL (http only on loopback)")
			}
		}
		if !strings.HasSuffix(o.RedirectURL, "/staff/oidc/callback") {
			bad("http.oidc.redirect_url", "must end in /staff/oidc/callback")
		}
		if o.ClientID == "" {
			bad("http.oidc.client_id", "missing")
		}
		if len(o.Staff) == 0 {
			bad("http.oidc.staff", "nobody may sign in: list the staff's e-mail addresses")
		}
		for _, a := range o.Staff {
			if _, err := mail.ParseAddress(a); err != nil {
				bad("http.oidc.staff", fmt.Sprintf("%q is not an e-mail address", printable(a, false)))
			}
		}
	}
	if c.HTTP.SessionTTL < time.Minute {
		bad("http.session_ttl", "must be at least 1m")
	}
	if c.HTTP.MaxConnections < 1 {
		bad("http.max_connections", "must be at least 1")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_timeout", c.HTTP.ReadTimeout}, {"write_timeout", c.HTTP.WriteTimeout}, {"idle_timeout", c.HTTP.IdleTimeout}} {
		if d.v < time.Second {
			bad("http."+d.key, "must be at least 1s")
		}
	}
	if r := c.Auth.DNSResolver; r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			bad("auth.dns_resolver", "want host:port")
		}
	}
	for _, id := range c.Auth.TrustedAuthservIDs {
		if id == "" || strings.ContainsAny(id, " ;\r\n") {
			bad("auth.trusted_authserv_ids", "an authserv-id is one word")
		}
	}
	if c.Constituency.AggregateWindow < 0 {
		bad("constituency.aggregate_window", "must not be negative")
	}
	if c.Constituency.ASNFile != "" && c.Constituency.File == "" {
		warn("constituency.asn_file", "set without constituency.file: nothing to match")
	}
	if sm := c.Crypto.SMIME; (sm.CertFile == "") != (sm.KeyFile == "") {
		bad("crypto.smime", "cert_file and key_file go together")
	}
	if c.Crypto.MaxDecompressedBytes <= 0 {
		bad("crypto.max_decompressed_bytes", "must be positive")
	}
	return ps
}

// validateOAuth2 checks an account's OAuth2 block at key k.
func validateOAuth2(k string, o *OAuth2) []Problem {
	var ps []Problem
	bad := func(key, m string) { ps = append(ps, Problem{Key: key, Msg: m}) }
	if o == nil {
		bad(k, "missing (auth: oauth2 needs it)")
		return ps
	}
	switch strings.ToLower(o.Provider) {
	case "microsoft":
		if o.Tenant == "" {
			bad(k+".tenant", "missing (provider microsoft needs the tenant's ID or domain)")
		}
	case "google":
	case "":
		if o.TokenURL == "" {
			bad(k+".token_url", "missing (no provider to take it from)")
		}
	default:
		bad(k+".provider", "must be microsoft, google or empty")
	}
	for _, u := range []struct{ key, v string }{{"token_url", o.TokenURL}, {"device_auth_url", o.DeviceAuthURL}} {
		if u.v != "" && !strings.HasPrefix(u.v, "https://") && !(strings.HasPrefix(u.v, "http://") && isLoopbackURL(u.v)) {
			bad(k+"."+u.key, "must be an https URL (http on loopback only)")
		}
	}
	if o.ClientID == "" {
		bad(k+".client_id", "missing")
	}
	switch o.Grant {
	case "":
		if o.ClientSecretFile != "" && o.RefreshTokenFile != "" {
			bad(k, "exactly one of client_secret_file (client credentials) and refresh_token_file (refresh token); grant: refresh_token lets both go together")
		}
	case "client_credentials":
		if o.ClientSecretFile == "" {
			bad(k+".client_secret_file", "missing (the client-credentials grant needs it)")
		}
	case "refresh_token":
	default:
		bad(k+".grant", "must be client_credentials or refresh_token")
	}
	return ps
}

func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && isLoopback(p.Hostname()+":0")
}

// UnstatedRFC2350 lists the optional RFC 2350 fields of Team that are
// empty (config check warns: the profile says "Not stated").
func (t Team) UnstatedRFC2350() []string {
	var out []string
	for k, v := range map[string]bool{
		"phone": t.Phone != "", "hours": t.Hours != "", "mission": t.Mission != "",
		"sponsorship": t.Sponsorship != "", "authority": t.Authority != "",
	} {
		if !v {
			out = append(out, k)
		}
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func isLoopback(addr string) bool {
	host := addr
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		host = addr[:i]
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// ReadSecret reads a secret file, trimming one trailing newline.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// ResolvedDSN returns the store DSN, reading DSNFile when set.
func (c *Config) ResolvedDSN() (string, error) {
	if c.Store.DSNFile != "" {
		return ReadSecret(c.Store.DSNFile)
	}
	return c.Store.DSN, nil
}

// OwnAddresses are team.address and every intake.smtp.recipients address,
// lower-cased.
func (c *Config) OwnAddresses() []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range append([]string{c.Team.Address}, c.Intake.SMTP.Recipients...) {
		a = strings.ToLower(strings.TrimSpace(a))
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Masked returns the configuration as YAML with secrets masked: the
// password of the store DSN in any of its forms (URL user info, a
// password-like query parameter, a keyword DSN's password=), and the path
// and query of the webhook URL (chat webhooks carry their token there).
func (c *Config) Masked() ([]byte, error) {
	cp := *c
	cp.Store.DSN = MaskDSN(cp.Store.DSN)
	cp.Notify.Alert.WebhookURL = maskURLPath(cp.Notify.Alert.WebhookURL)
	return yaml.Marshal(&cp)
}

const mask = "*****"

// secretParam is a DSN parameter whose value is a secret (libpq's
// password and sslpassword, and anything else named like one).
var secretParam = regexp.MustCompile(`(?i)pass(word)?|secret|token`)

// keywordSecretRE finds the value of a secret keyword in a libpq keyword
// DSN ("host=db password='x y' user=u").
var keywordSecretRE = regexp.MustCompile(`(?i)(\b\w*(?:pass(?:word)?|secret|token)\w*\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// MaskDSN hides the secrets of a store DSN.
func MaskDSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return keywordSecretRE.ReplaceAllString(dsn, "${1}"+mask)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return mask // cannot tell the secret apart: show none of it
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "PASSWORDMASK")
	}
	q := u.Query()
	for k := range q {
		if secretParam.MatchString(k) {
			q.Set(k, "PASSWORDMASK")
		}
	}
	u.RawQuery = q.Encode()
	return strings.ReplaceAll(u.String(), "PASSWORDMASK", mask)
}

// maskURLPath keeps a URL's scheme and host and hides the rest.
func maskURLPath(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return mask
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return s
	}
	return u.Scheme + "://" + u.Host + "/" + mask
}
