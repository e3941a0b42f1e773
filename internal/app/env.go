package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/madoguchi/madoguchi/configs"
	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/pipeline"
	"github.com/madoguchi/madoguchi/senderauth"
	"github.com/madoguchi/madoguchi/store"
)

// Env is the loaded configuration and what is derived from it: what
// every command needs, serve included.
type Env struct {
	Cfg       *configs.Config
	ParseOpts parse.Options
	Log       *slog.Logger
	// Stderr takes warnings meant for the operator at a terminal.
	Stderr io.Writer

	authOnce sync.Once
	auth     *senderauth.Checker
}

// ExitError carries an exit status: 2 for bad usage, configuration or
// input; 1 for failures at run time.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// UsageErr is an error of usage, configuration or input (exit status 2).
func UsageErr(format string, a ...any) error {
	return &ExitError{2, fmt.Sprintf(format, a...)}
}

// RunErr is a failure at run time (exit status 1).
func RunErr(format string, a ...any) error { return &ExitError{1, fmt.Sprintf(format, a...)} }

// LoadEnv loads the configuration at path ("": ./madoguchi.yaml if there
// is one, else the built-in defaults), validates it (every problem in one
// error) and derives the parse options.
func LoadEnv(path string) (*Env, error) {
	var cfg *configs.Config
	var err error
	switch {
	case path != "":
		cfg, err = configs.Load(path)
	default:
		if _, statErr := os.Stat("madoguchi.yaml"); statErr == nil {
			cfg, err = configs.Load("madoguchi.yaml")
		} else {
			cfg = configs.Defaults()
		}
	}
	if msg := configProblems(cfg, err); msg != "" {
		return nil, &ExitError{2, msg}
	}
	e := &Env{Cfg: cfg, Stderr: os.Stderr, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if err := e.buildParseOptions(); err != nil {
		return nil, err
	}
	return e, nil
}

// configProblems is every error of the configuration, one per line with
// file, line and key: what yaml found (wrong types, unknown keys) and what
// Validate finds, so that an operator fixing a file sees all of it in one
// run. "" when there is none.
func configProblems(cfg *configs.Config, loadErr error) string {
	var lines []string
	var es configs.Errors
	var one *configs.Error
	switch {
	case errors.As(loadErr, &es):
		for _, e := range es {
			lines = append(lines, e.Error())
		}
	case errors.As(loadErr, &one):
		lines = append(lines, one.Error())
	case loadErr != nil:
		lines = append(lines, loadErr.Error())
	}
	if cfg != nil {
		for _, p := range cfg.Validate() {
			if !p.Warning {
				if p.File == "" {
					p.File = OrDefault(cfg.Path)
				}
				lines = append(lines, p.Where())
			}
		}
	}
	return strings.Join(lines, "\n")
}

// OrDefault names a configuration file, or the built-in defaults.
func OrDefault(p string) string {
	if p == "" {
		return "built-in defaults"
	}
	return p
}

func (e *Env) buildParseOptions() error {
	c := e.Cfg
	own := c.OwnAddresses()
	domains := map[string]bool{}
	for _, a := range own {
		if i := strings.LastIndex(a, "@"); i >= 0 {
			domains[a[i+1:]] = true
		}
	}
	if u, err := url.Parse(c.Team.PublicURL); err == nil && u.Hostname() != "" {
		domains[strings.ToLower(u.Hostname())] = true
	}
	o := parse.Options{TeamName: c.Team.Name, OwnAddresses: own, TicketPrefix: c.Team.TicketPrefix}
	for d := range domains {
		o.OwnDomains = append(o.OwnDomains, d)
	}
	for _, p := range c.Parse.PartnerTags {
		o.PartnerTags = append(o.PartnerTags, parse.PartnerTag{Name: p.Name, Pattern: regexp.MustCompile(p.Pattern)})
	}
	if c.Parse.RulesFile != "" {
		b, err := os.ReadFile(c.Parse.RulesFile)
		if err != nil {
			return UsageErr("%s: cannot read: %v", c.Parse.RulesFile, UnwrapPathErr(err))
		}
		r, err := parse.LoadRules(b)
		if err != nil {
			return UsageErr("%s: %v", c.Parse.RulesFile, err)
		}
		o.Rules = r
	}
	e.ParseOpts = o
	return nil
}

// UnwrapPathErr is the cause of a file error without the path, which the
// caller names by its configuration key.
func UnwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadKeys reads the team keys and the keyring. Missing configuration is
// not an error (no OpenPGP); unreadable files are.
func (e *Env) LoadKeys() (*crypto.Keys, error) { return e.LoadKeysMode(false) }

// loadKeysMode with lenient set skips an unreadable team key file with a
// warning instead of failing: `parse` is a diagnostic command and must still
// show what it can of a plain message when a key file is missing.
func (e *Env) LoadKeysMode(lenient bool) (*crypto.Keys, error) {
	c := e.Cfg.Crypto
	if len(c.TeamKeyFiles) == 0 && c.KeyringFile == "" && c.SMIME == (configs.SMIME{}) {
		return nil, nil
	}
	var team [][]byte
	for _, f := range c.TeamKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			if lenient {
				fmt.Fprintf(e.Stderr, "madoguchi: warning: %s: cannot read: %v (going on without it)\n", f, UnwrapPathErr(err))
				continue
			}
			return nil, UsageErr("%s: cannot read: %v", f, UnwrapPathErr(err))
		}
		team = append(team, b)
	}
	var pass []byte
	if c.TeamKeyPassphraseFile != "" {
		s, err := configs.ReadSecret(c.TeamKeyPassphraseFile)
		if err != nil {
			return nil, UsageErr("%s: cannot read: %v", c.TeamKeyPassphraseFile, UnwrapPathErr(err))
		}
		pass = []byte(s)
	}
	var known []byte
	if c.KeyringFile != "" {
		b, err := os.ReadFile(c.KeyringFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, UsageErr("%s: cannot read: %v", c.KeyringFile, UnwrapPathErr(err))
		}
		known = b
	}
	k, err := crypto.LoadKeys(team, pass, known)
	if err != nil {
		return nil, UsageErr("crypto: %v", err)
	}
	if k.SMIME, err = e.loadSMIME(); err != nil {
		return nil, err
	}
	return k, nil
}

// loadSMIME reads crypto.smime's files (nil when none is configured).
func (e *Env) loadSMIME() (*crypto.SMIME, error) {
	c := e.Cfg.Crypto.SMIME
	if c == (configs.SMIME{}) {
		return nil, nil
	}
	read := func(key, path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, UsageErr("%s: cannot read (crypto.smime.%s): %v", path, key, UnwrapPathErr(err))
		}
		return b, nil
	}
	cert, err := read("cert_file", c.CertFile)
	if err != nil {
		return nil, err
	}
	key, err := read("key_file", c.KeyFile)
	if err != nil {
		return nil, err
	}
	anchors, err := read("trust_anchors_file", c.TrustAnchorsFile)
	if err != nil {
		return nil, err
	}
	var pass []byte
	if c.KeyPassphraseFile != "" {
		p, err := configs.ReadSecret(c.KeyPassphraseFile)
		if err != nil {
			return nil, UsageErr("%s: cannot read (crypto.smime.key_passphrase_file): %v", c.KeyPassphraseFile, UnwrapPathErr(err))
		}
		pass = []byte(p)
	}
	s, err := crypto.LoadSMIME(cert, key, pass, anchors)
	if err != nil {
		return nil, UsageErr("crypto.smime: %v", err)
	}
	return s, nil
}

// keysAndStore loads the keys, then opens the store: what every command
// that runs the pipeline needs first (keys first, so a bad key file stops
// it before any database work).
func (e *Env) KeysAndStore(ctx context.Context) (*crypto.Keys, store.Store, error) {
	keys, err := e.LoadKeys()
	if err != nil {
		return nil, nil, err
	}
	s, err := e.OpenStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	return keys, s, nil
}

func (e *Env) OpenStore(ctx context.Context) (store.Store, error) {
	dsn, err := e.Cfg.ResolvedDSN()
	if err != nil {
		return nil, UsageErr("%s: cannot read: %v", e.Cfg.Store.DSNFile, UnwrapPathErr(err))
	}
	s, err := stores.Open(ctx, e.Cfg.Store.Driver, dsn, store.Options{TicketPrefix: e.Cfg.Team.TicketPrefix})
	if err != nil {
		return nil, RunErr("store (%s): %v", e.Cfg.Store.Driver, err)
	}
	return s, nil
}

func (e *Env) CryptoLimits() crypto.Limits {
	return crypto.Limits{MaxDecompressed: e.Cfg.Crypto.MaxDecompressedBytes}
}

// messageIDDomain is the right-hand side of the Message-IDs of what the
// gateway sends: the domain of team.address (the team's mail domain), else
// the host of team.public_url, else this machine's name.
func (e *Env) MessageIDDomain() string {
	if i := strings.LastIndex(e.Cfg.Team.Address, "@"); i >= 0 && i+1 < len(e.Cfg.Team.Address) {
		return strings.ToLower(e.Cfg.Team.Address[i+1:])
	}
	if u, err := url.Parse(e.Cfg.Team.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return e.Hostname()
}

// hostname is the name the SMTP listener greets with and the relay
// client says EHLO with: intake.smtp.hostname, else the machine's name.
func (e *Env) Hostname() string {
	if h := e.Cfg.Intake.SMTP.Hostname; h != "" {
		return h
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// SenderAuth is the sender authentication checker of the configuration
// (auth.*), one per Env so that its DNS cache is shared; nil when
// auth.disabled.
func (e *Env) SenderAuth() *senderauth.Checker {
	e.authOnce.Do(func() {
		if !e.Cfg.Auth.Disabled {
			e.auth = &senderauth.Checker{Resolver: senderauth.NewResolver(e.Cfg.Auth.DNSResolver), TrustedAuthservIDs: e.Cfg.Auth.TrustedAuthservIDs}
		}
	})
	return e.auth
}

func (e *Env) Processor(s store.Store, keys *crypto.Keys, noAck bool) *pipeline.Processor {
	domain := e.MessageIDDomain()
	return &pipeline.Processor{Auth: e.SenderAuth(), Store: s, Keys: keys, CryptoLimit: e.CryptoLimits(), ParseOpts: e.ParseOpts,
		AckDomain: domain, NoAck: noAck, MaxAttempts: e.Cfg.Pipeline.MaxAttempts, Lease: e.Cfg.Pipeline.Lease, Log: e.Log,
		FollowUpNote: e.Cfg.Notify.FollowUp == "note", AlertOn: e.Cfg.Notify.Alert.Classifications,
		DutyAddress: e.Cfg.Notify.Alert.DutyAddress, WebhookURL: e.Cfg.Notify.Alert.WebhookURL,
		ParseSlots: pipeline.ParseSlotsFor(e.Cfg.Pipeline.ParseConcurrency)}
}
