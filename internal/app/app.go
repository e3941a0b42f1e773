package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/notify"
	"github.com/madoguchi/madoguchi/pipeline"
	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/web"
)

// Options are what a caller of New may add to the configuration.
type Options struct {
	// Version is what madoguchi_build_info reports.
	Version string
	// AfterDeliver, when set, is called after each outbox row is
	// delivered and before it is marked sent (the crash tests).
	AfterDeliver func(store.OutboxEntry)
}

// App is the daemon: every part built from one configuration by New, run
// together by Run, stopped together by Shutdown.
type App struct {
	env   *Env
	store store.Store
	keys  atomic.Pointer[crypto.Keys]
	cons  atomic.Pointer[Constituents]
	// tokens are the staff tokens (reloaded on SIGHUP: a removed line
	// ends its sessions).
	tokens atomic.Pointer[web.Tokens]
	reg    *prometheus.Registry
	m      *metrics
	tls    *tls.Config
	sec    *secrets

	mux       *http.ServeMux
	committer *store.Committer
	intakeM   *intake.Metrics
	oauthM    *oauth.Metrics
	proc      *pipeline.Processor
	writer    *notify.Writer
	noticer   *notify.Noticer
	pollers   []*intake.Poller
	wake      chan struct{}
	ready     atomic.Bool

	// Set by Run.
	http      *http.Server
	mail      []*intake.Server
	stopWork  context.CancelFunc
	stopPolls context.CancelFunc
	work      sync.WaitGroup
	polls     sync.WaitGroup
}

// New reads every secret, certificate and key the configuration names,
// opens and migrates the store and builds every part. It binds nothing:
// whatever is missing or wrong stops it before a listener takes mail, a
// missing or unreadable file with exit status 2 naming its key.
func New(ctx context.Context, e *Env, opt Options) (*App, error) {
	sec, err := e.loadSecrets()
	if err != nil {
		return nil, err
	}
	cons, err := e.LoadConstituents()
	if err != nil {
		return nil, err
	}
	keys, s, err := e.KeysAndStore(ctx)
	if err != nil {
		return nil, err
	}
	a := &App{env: e, store: s, sec: sec, tls: sec.tls, reg: prometheus.NewRegistry(), wake: make(chan struct{}, 1)}
	a.keys.Store(keys)
	a.cons.Store(cons)
	a.tokens.Store(sec.tokens)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &queueCollector{s: s})
	a.m = newMetrics(a.reg)
	a.intakeM = intake.NewMetrics(a.reg)
	a.oauthM = oauth.NewMetrics(a.reg)
	version := opt.Version
	if version == "" {
		version = "dev"
	}
	a.m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	a.m.setKeyExpiry(keys)
	a.m.constituents.Set(float64(cons.Set.Len()))
	if a.tls != nil {
		if leaf, err := x509.ParseCertificate(a.tls.Certificates[0].Certificate[0]); err == nil {
			a.m.certExpiry.Set(float64(leaf.NotAfter.Unix()))
		}
	}
	if d := e.Cfg.Intake.SMTP.SpillDir; d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			_ = s.Close()
			return nil, RunErr("intake.smtp.spill_dir: %v", err)
		}
	}
	a.mux = a.routes()

	a.proc = e.Processor(s, keys, false)
	a.proc.KeySource = a.keys.Load
	a.proc.Metrics = pipeline.NewMetrics(a.reg)
	a.proc.Constituents = func() *constituency.Set { return a.cons.Load().Set }

	cfg := e.Cfg
	a.writer = &notify.Writer{Store: s, Dir: cfg.Notify.OutboxDir, Log: e.Log, KeySource: a.keys.Load,
		Metrics:     notify.NewMetrics(a.reg),
		Team:        notify.Team{Name: cfg.Team.Name, Address: cfg.Team.Address, Hours: cfg.Team.Hours, Timezone: cfg.Team.Timezone},
		TemplateDir: cfg.Notify.TemplatesDir, JapaneseCharset: cfg.Notify.JapaneseCharset,
		RatePerHour: cfg.Notify.RatePerHour, DomainPerHour: cfg.Notify.RatePerDomainPerHour, GlobalPerHour: cfg.Notify.RateGlobalPerHour,
		SubaddressSeparators: cfg.Notify.SubaddressSeparators, MaxAttempts: cfg.Notify.MaxAttempts, Lease: max(cfg.Pipeline.Lease, 5*time.Second),
		AlertInternal: cfg.Notify.Alert.Internal, WebhookSecret: sec.webhook, AfterDeliver: opt.AfterDeliver,
		ContactKeys: func(addr string) (openpgp.EntityList, bool) { return a.cons.Load().ContactKey(addr, time.Now()) }}
	a.noticer = &notify.Noticer{Store: s, Constituents: a.proc.Constituents, Window: cfg.Constituency.AggregateWindow,
		Domain: e.MessageIDDomain(), Metrics: a.writer.Metrics, Log: e.Log,
		HasKey: func(addr string) bool {
			if _, has := a.cons.Load().ContactKey(addr, time.Now()); has {
				return true
			}
			return len(a.keys.Load().KeyFor(addr, time.Now())) > 0
		}}
	if n := cfg.Notify; n.Relay != "" {
		relay := &notify.Relay{Addr: n.Relay, TLS: n.RelayTLS, Username: n.RelayUsername, Password: sec.relayPassword, Hostname: e.Hostname(),
			TLSConfig: sec.relayTLS}
		if sec.relayOAuth2 != nil {
			relay.OAuth2 = oauth.NewSource(*sec.relayOAuth2, s, e.Log, a.oauthM)
		}
		a.writer.Deliver = relay
	}

	// IMAP pollers: one per mailbox, each holding the mailbox's lock (on
	// PostgreSQL an advisory lock: one daemon polls it at a time).
	for i, m := range cfg.Intake.IMAP {
		var src *oauth.Source
		if oc := sec.imapOAuth2[i]; oc != nil {
			src = oauth.NewSource(*oc, s, e.Log, a.oauthM)
		}
		a.pollers = append(a.pollers, &intake.Poller{Store: s, Log: e.Log, Spooled: a.wake, Metrics: a.intakeM, Cfg: intake.IMAPConfig{
			Address: m.Address, TLS: m.TLS, Username: m.Username, Password: sec.imapPasswords[i], OAuth2: src, Mailbox: m.Mailbox,
			ProcessedMailbox: m.ProcessedMailbox, PollInterval: m.PollInterval, MaxMessage: cfg.Intake.SMTP.MaxMessageBytes}})
	}
	return a, nil
}

// routes is the HTTP listener's: health, the public documents, the staff
// pages and API, /metrics and, when asked for, Go's profiler.
func (a *App) routes() *http.ServeMux {
	e, s := a.env, a.store
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.SchemaVersion(r.Context())
		switch {
		case err != nil:
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
		case v != s.LatestMigration():
			http.Error(w, "migrations not current", http.StatusServiceUnavailable)
		case !a.ready.Load():
			http.Error(w, "listeners not bound", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	e.PublicHandlers(mux, a.keys.Load)
	tokens := a.tokens.Load
	t := e.Cfg.Team
	(&web.Server{Store: s, TokenSource: tokens, Team: t.Name, Log: e.Log,
		Public:     web.Public{Name: t.Name, Address: t.Address, Phone: t.Phone, Hours: t.Hours},
		SessionTTL: e.Cfg.HTTP.SessionTTL, BehindTLSProxy: e.Cfg.HTTP.BehindTLSProxy, Domain: e.MessageIDDomain(),
		KeyKnown: a.keyKnown,
		OIDC:     a.oidc()}).Register(mux)
	mux.Handle("/metrics", web.LoopbackOrToken(tokens, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})))
	if e.Cfg.HTTP.Pprof {
		// Go's profiler, when asked for, under the same rule as /metrics
		// (loopback or a staff token): where a busy daemon's CPU goes.
		mux.Handle("/debug/pprof/", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// keyKnown tells whether an answer to rcpt can be encrypted: an OpenPGP
// key of the recipient in the keyring, or an S/MIME certificate kept for
// the recipient or the report's From (what notify encrypts to).
func (a *App) keyKnown(rcpt, from string) bool {
	if len(a.keys.Load().KeyFor(rcpt, time.Now())) > 0 {
		return true
	}
	for _, addr := range []string{rcpt, from} {
		if _, err := a.store.Certificate(context.Background(), addr); err == nil {
			return true
		}
	}
	return false
}

// oidc is the staff's OpenID Connect sign-in (nil when not configured).
func (a *App) oidc() *web.OIDC {
	o := a.env.Cfg.HTTP.OIDC
	if o == nil {
		return nil
	}
	var staff []string
	for _, s := range o.Staff {
		staff = append(staff, strings.ToLower(strings.TrimSpace(s)))
	}
	return &web.OIDC{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: a.sec.oidcSecret, RedirectURL: o.RedirectURL, Staff: staff}
}

// Addrs are the addresses Run bound ("" for a listener not configured).
type Addrs struct{ SMTP, LMTP, Submission, HTTP string }

// Start binds the listeners and starts every part; it returns once mail
// is taken. An error (a listener that cannot bind) leaves nothing running.
func (a *App) Start() (Addrs, error) {
	e, cfg := a.env, a.env.Cfg
	var addrs Addrs
	hl, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return addrs, RunErr("http listen %s: %v", cfg.HTTP.Listen, err)
	}
	hc := cfg.HTTP
	a.http = &http.Server{Handler: a.mux, ReadHeaderTimeout: min(10*time.Second, hc.ReadTimeout), ReadTimeout: hc.ReadTimeout,
		WriteTimeout: hc.WriteTimeout, IdleTimeout: hc.IdleTimeout, MaxHeaderBytes: 64 << 10}
	hl = netutil.LimitListener(hl, e.httpConnLimit())
	addrs.HTTP = hl.Addr().String()
	go func() {
		if err := a.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.Log.Error("http", "err", err)
		}
	}()

	// SMTP, LMTP and submission share one group committer: concurrent
	// arrivals are made durable by one commit, each 250 after the commit
	// holding it.
	a.committer = store.NewCommitter(a.store, 64)
	startMail := func(listen string, lmtp bool, creds *intake.Credentials) (string, error) {
		c := cfg.Intake.SMTP
		b := &intake.Backend{Store: a.committer, Log: e.Log, Spooled: a.wake, Metrics: a.intakeM, Credentials: creds, RequireAuth: creds != nil, Config: intake.SMTPConfig{
			Recipients: c.Recipients, MaxMessageBytes: c.MaxMessageBytes, Hostname: e.Hostname(), LMTP: lmtp,
			TLS: a.tls, MaxRecipients: c.MaxRecipients, MaxMessagesPerConn: c.MaxMessagesPerConnection, MaxAuthFailures: c.MaxAuthFailures,
			SpillDir: c.SpillDir,
			Conns: intake.ConnLimits{Timeout: c.Timeout, IPv6Prefix: c.IPv6PrefixLength, BusyTimeout: c.BusyTimeout,
				ProgressTimeout: c.ProgressTimeout, MaxJunkCommands: c.MaxJunkCommands, MaxSessionTime: c.MaxSessionTime, MinDataRate: c.MinDataRate}}}
		if !lmtp {
			// LMTP comes from the MTA in front (trusted, on a socket):
			// only the SMTP listeners limit connections.
			b.Config.Conns.MaxConnections, b.Config.Conns.MaxPerClient = c.MaxConnections, c.MaxConnectionsPerIP
		}
		srv := intake.NewServer(b)
		l, err := listenAddr(listen)
		if err != nil {
			return "", err
		}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				e.Log.Error("mail listener", "listen", listen, "err", err)
			}
		}()
		a.mail = append(a.mail, srv)
		return l.Addr().String(), nil
	}
	fail := func(err error) (Addrs, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.Shutdown(ctx)
		return Addrs{}, err
	}
	if !cfg.Intake.SMTP.Disabled && cfg.Intake.SMTP.Listen != "" {
		if addrs.SMTP, err = startMail(cfg.Intake.SMTP.Listen, false, nil); err != nil {
			return fail(RunErr("smtp listen %s: %v", cfg.Intake.SMTP.Listen, err))
		}
	}
	if cfg.Intake.LMTP.Listen != "" {
		if addrs.LMTP, err = startMail(cfg.Intake.LMTP.Listen, true, nil); err != nil {
			return fail(RunErr("lmtp listen %s: %v", cfg.Intake.LMTP.Listen, err))
		}
	}
	if sub := cfg.Intake.Submission; sub.Listen != "" {
		if addrs.Submission, err = startMail(sub.Listen, false, a.sec.submission); err != nil {
			return fail(RunErr("submission listen %s: %v", sub.Listen, err))
		}
	}

	pollCtx, stopPolls := context.WithCancel(context.Background())
	a.stopPolls = stopPolls
	for _, p := range a.pollers {
		a.polls.Add(1)
		go func() { defer a.polls.Done(); p.Run(pollCtx) }()
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	a.stopWork = stopWork
	host, _ := os.Hostname()
	a.work.Add(3)
	go func() {
		defer a.work.Done()
		if !cfg.Pipeline.Enabled {
			e.Log.Info("pipeline disabled: intake only, filing left to other daemons")
			<-workCtx.Done()
			return
		}
		a.proc.Run(workCtx, fmt.Sprintf("%s/%d", host, os.Getpid()), cfg.Pipeline.WorkerCount(), a.wake)
	}()
	go func() { defer a.work.Done(); a.writer.Run(workCtx) }()
	go func() { defer a.work.Done(); a.noticer.Run(workCtx) }()
	if warns, err := a.store.ServerWarnings(workCtx); err == nil {
		for _, w := range warns {
			e.Log.Warn(w)
		}
	}
	a.ready.Store(true)
	e.Log.Info("madoguchi serving", "smtp", addrs.SMTP, "lmtp", addrs.LMTP, "http", addrs.HTTP, "store", cfg.Store.Driver)
	return addrs, nil
}

// Reload reads the team keys, the keyring, the staff tokens and the
// constituents again
// (SIGHUP); what fails to load leaves the previous in use, and the error
// says what.
func (a *App) Reload() error {
	kerr := a.ReloadKeys()
	if t, err := a.env.StaffTokens(); err != nil {
		kerr = errors.Join(kerr, err)
	} else {
		a.tokens.Store(t)
	}
	c, cerr := a.env.LoadConstituents()
	if cerr != nil {
		a.m.consReloads.WithLabelValues("failed").Inc()
	} else {
		a.cons.Store(c)
		a.m.constituents.Set(float64(c.Set.Len()))
		a.m.consReloads.WithLabelValues("ok").Inc()
		a.env.Log.Info("constituents reloaded", "constituents", c.Set.Len())
	}
	return errors.Join(kerr, cerr)
}

// ReloadKeys reads the team keys and the keyring again; on failure the
// keys in use stay, and the error says why.
func (a *App) ReloadKeys() error {
	k, err := a.env.LoadKeys()
	if err != nil {
		a.m.keyReloads.WithLabelValues("failed").Inc()
		return err
	}
	a.keys.Store(k)
	a.m.setKeyExpiry(k)
	a.m.keyReloads.WithLabelValues("ok").Inc()
	a.env.Log.Info("keys reloaded", "team", len(k.TeamKeys()), "known", k.KnownCount())
	return nil
}

// Shutdown stops taking mail, lets work in hand finish until ctx ends
// (what is left is claimed again after its lease) and closes the store.
func (a *App) Shutdown(ctx context.Context) {
	a.ready.Store(false)
	for _, srv := range a.mail {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	}
	if a.stopPolls != nil {
		a.stopPolls()
		a.polls.Wait()
	}
	if a.stopWork != nil {
		a.stopWork()
		done := make(chan struct{})
		go func() { a.work.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.env.Log.Warn("workers did not stop in time; their claims return after the lease")
		}
	}
	if a.committer != nil {
		a.committer.Close()
	}
	if a.http != nil {
		_ = a.http.Shutdown(ctx)
	}
	_ = a.store.Close()
}

// Run starts the daemon (started, when set, is told where it listens),
// serves until ctx ends, then shuts down, giving work in hand 8 s.
func (a *App) Run(ctx context.Context, started func(Addrs)) error {
	addrs, err := a.Start()
	if err != nil {
		return err
	}
	if started != nil {
		started(addrs)
	}
	<-ctx.Done()
	a.env.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	a.Shutdown(sctx)
	return nil
}
