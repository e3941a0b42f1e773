package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/configs"
	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/pipeline"
	"github.com/madoguchi/madoguchi/store"
)

// env is the loaded configuration and what is derived from it.
type env struct {
	cfg            *configs.Config
	stdout, stderr io.Writer
	parseOpts      parse.Options
	log            *slog.Logger
}

func loadEnv(path string) (*env, error) {
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
		return nil, &exitError{2, msg}
	}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
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
					p.File = orDefault(cfg.Path)
				}
				lines = append(lines, p.Where())
			}
		}
	}
	return strings.Join(lines, "\n")
}

func orDefault(p string) string {
	if p == "" {
		return "built-in defaults"
	}
	return p
}

func (e *env) buildParseOptions() error {
	c := e.cfg
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
			return usageErr("%s: cannot read: %v", c.Parse.RulesFile, unwrapPathErr(err))
		}
		r, err := parse.LoadRules(b)
		if err != nil {
			return usageErr("%s: %v", c.Parse.RulesFile, err)
		}
		o.Rules = r
	}
	e.parseOpts = o
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadKeys reads the team keys and the keyring. Missing configuration is
// not an error (no OpenPGP); unreadable files are.
func (e *env) loadKeys() (*crypto.Keys, error) { return e.loadKeysMode(false) }

// loadKeysMode with lenient set skips an unreadable team key file with a
// warning instead of failing: `parse` is a diagnostic command and must still
// show what it can of a plain message when a key file is missing.
func (e *env) loadKeysMode(lenient bool) (*crypto.Keys, error) {
	c := e.cfg.Crypto
	if len(c.TeamKeyFiles) == 0 && c.KeyringFile == "" {
		return nil, nil
	}
	var team [][]byte
	for _, f := range c.TeamKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			if lenient {
				fmt.Fprintf(e.stderr, "madoguchi: warning: %s: cannot read: %v (going on without it)\n", f, unwrapPathErr(err))
				continue
			}
			return nil, usageErr("%s: cannot read: %v", f, unwrapPathErr(err))
		}
		team = append(team, b)
	}
	var pass []byte
	if c.TeamKeyPassphraseFile != "" {
		s, err := configs.ReadSecret(c.TeamKeyPassphraseFile)
		if err != nil {
			return nil, usageErr("%s: cannot read: %v", c.TeamKeyPassphraseFile, unwrapPathErr(err))
		}
		pass = []byte(s)
	}
	var known []byte
	if c.KeyringFile != "" {
		b, err := os.ReadFile(c.KeyringFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, usageErr("%s: cannot read: %v", c.KeyringFile, unwrapPathErr(err))
		}
		known = b
	}
	k, err := crypto.LoadKeys(team, pass, known)
	if err != nil {
		return nil, usageErr("crypto: %v", err)
	}
	return k, nil
}

// keysAndStore loads the keys, then opens the store: what every command
// that runs the pipeline needs first (keys first, so a bad key file stops
// it before any database work).
func (e *env) keysAndStore(ctx context.Context) (*crypto.Keys, store.Store, error) {
	keys, err := e.loadKeys()
	if err != nil {
		return nil, nil, err
	}
	s, err := e.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	return keys, s, nil
}

func (e *env) openStore(ctx context.Context) (store.Store, error) {
	dsn, err := e.cfg.ResolvedDSN()
	if err != nil {
		return nil, usageErr("%s: cannot read: %v", e.cfg.Store.DSNFile, unwrapPathErr(err))
	}
	s, err := stores.Open(ctx, e.cfg.Store.Driver, dsn, store.Options{TicketPrefix: e.cfg.Team.TicketPrefix})
	if err != nil {
		return nil, runErr("store (%s): %v", e.cfg.Store.Driver, err)
	}
	return s, nil
}

func (e *env) cryptoLimits() crypto.Limits {
	return crypto.Limits{MaxDecompressed: e.cfg.Crypto.MaxDecompressedBytes}
}

// messageIDDomain is the right-hand side of the Message-IDs of what the
// gateway sends: the domain of team.address (the team's mail domain), else
// the host of team.public_url, else this machine's name.
func (e *env) messageIDDomain() string {
	if i := strings.LastIndex(e.cfg.Team.Address, "@"); i >= 0 && i+1 < len(e.cfg.Team.Address) {
		return strings.ToLower(e.cfg.Team.Address[i+1:])
	}
	if u, err := url.Parse(e.cfg.Team.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return e.hostname()
}

// hostname is the name the SMTP listener greets with and the relay
// client says EHLO with: intake.smtp.hostname, else the machine's name.
func (e *env) hostname() string {
	if h := e.cfg.Intake.SMTP.Hostname; h != "" {
		return h
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func (e *env) processor(s store.Store, keys *crypto.Keys, noAck bool) *pipeline.Processor {
	domain := e.messageIDDomain()
	return &pipeline.Processor{Store: s, Keys: keys, CryptoLimit: e.cryptoLimits(), ParseOpts: e.parseOpts,
		AckDomain: domain, NoAck: noAck, MaxAttempts: e.cfg.Pipeline.MaxAttempts, Lease: e.cfg.Pipeline.Lease, Log: e.log,
		FollowUpNote: e.cfg.Notify.FollowUp == "note", AlertOn: e.cfg.Notify.Alert.Classifications,
		DutyAddress: e.cfg.Notify.Alert.DutyAddress, WebhookURL: e.cfg.Notify.Alert.WebhookURL,
		ParseSlots: pipeline.ParseSlotsFor(e.cfg.Pipeline.ParseConcurrency)}
}

var version = "dev"

func cmdVersion(w io.Writer) error {
	commit, goVersion := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
		if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	fmt.Fprintf(w, "madoguchi %s (commit %s, %s)\n", version, commit, goVersion)
	return nil
}

func (e *env) cmdParse(args []string) error {
	if len(args) != 1 {
		return usageErr("usage: madoguchi parse FILE|-")
	}
	raw, err := readInput(args[0])
	if err != nil {
		return err
	}
	keys, err := e.loadKeysMode(true)
	if err != nil {
		return err
	}
	rep, perr := pipeline.Analyze(raw, keys, e.cryptoLimits(), e.parseOpts, time.Now())
	if rep == nil {
		return runErr("%s: %v", args[0], perr)
	}
	enc := jsonEncoder(e.stdout)
	return enc.Encode(rep)
}

func readInput(path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageErr("%s: cannot read: %v", path, unwrapPathErr(err))
	}
	return b, nil
}
