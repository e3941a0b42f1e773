package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/madoguchi/madoguchi/configs"
	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/notify"
	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/web"
)

var (
	metricProcessed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_pipeline_messages_total", Help: "Messages processed, by outcome (new, attached, duplicate, reprocessed, failed).",
	}, []string{"outcome"})
	metricBuildInfo = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "madoguchi_build_info", Help: "Always 1; the labels say what is running.",
	}, []string{"version", "goversion"})
	metricKeyExpiry = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "madoguchi_team_key_expiry_timestamp_seconds", Help: "When each team key expires (0: never).",
	}, []string{"fingerprint"})
	metricCertExpiry = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "madoguchi_tls_certificate_expiry_timestamp_seconds", Help: "When the SMTP listener's TLS certificate expires.",
	})
	metricKeyReloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_key_reloads_total", Help: "Key reloads on SIGHUP, by result (ok, failed).",
	}, []string{"result"})
	metricProcessSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "madoguchi_pipeline_seconds", Help: "Time to unwrap, parse and file one message.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
)

func (e *env) quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// queueCollector exports queue and outbox depths, read from the store at
// scrape time but at most once per countsMaxAge: each read counts whole
// tables, and a load tool scraping several times a second spent a fifth
// of the daemon's CPU on it.
type queueCollector struct {
	s store.Store

	mu     sync.Mutex
	at     time.Time
	queue  map[string]int
	outbox map[string]int
}

// countsMaxAge is how old the queue and outbox gauges may be.
const countsMaxAge = 5 * time.Second

// counts returns the queue and outbox rows per state, from the store when
// the last read is older than countsMaxAge (nil maps when it fails).
func (c *queueCollector) counts() (queue, outbox map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < countsMaxAge {
		return c.queue, c.outbox
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q, qerr := c.s.QueueCounts(ctx)
	o, oerr := c.s.OutboxCounts(ctx)
	if qerr != nil || oerr != nil {
		return q, o // not cached: the next scrape tries again
	}
	c.at, c.queue, c.outbox = time.Now(), q, o
	return q, o
}

var (
	queueDesc  = prometheus.NewDesc("madoguchi_queue_messages", "Work queue rows by state (ready, claimed, done, quarantined).", []string{"state"}, nil)
	outboxDesc = prometheus.NewDesc("madoguchi_outbox_messages", "Outbox rows by state (pending, sending, sent, dead).", []string{"state"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc; ch <- outboxDesc }
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q, o := c.counts()
	if q != nil {
		for _, st := range []string{store.StateReady, store.StateClaimed, store.StateDone, store.StateQuarantined} {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(q[st]), st)
		}
	}
	if o != nil {
		for _, st := range []string{store.OutboxPending, store.OutboxSending, store.OutboxSent, store.OutboxDead, store.OutboxSkipped} {
			ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(o[st]), st)
		}
	}
}

// secrets are what serve reads from files named by the configuration,
// besides the store DSN and the keys (keysAndStore).
type secrets struct {
	tokens        *web.Tokens
	tls           *tls.Config // nil: no STARTTLS
	submission    *intake.Credentials
	imapPasswords []string        // by intake.imap index
	imapOAuth2    []*oauth.Config // by intake.imap index, nil for passwords
	relayOAuth2   *oauth.Config
	relayPassword string
	relayTLS      *tls.Config
	webhook       []byte
}

// loadSecrets reads every secret and certificate serve needs; an error is
// a usage error (exit 2) naming the key.
func (e *env) loadSecrets() (*secrets, error) {
	var sec secrets
	var err error
	if sec.tokens, err = e.staffTokens(); err != nil {
		return nil, err
	}
	if c := e.cfg.Intake.SMTP; c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, usageErr("intake.smtp.tls_cert_file: %v", err)
		}
		sec.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if sub := e.cfg.Intake.Submission; sub.Listen != "" {
		b, err := os.ReadFile(sub.CredentialsFile)
		if err != nil {
			return nil, usageErr("intake.submission.credentials_file: %v", unwrapPathErr(err))
		}
		if sec.submission, err = intake.ParseCredentials(b); err != nil {
			return nil, usageErr("intake.submission.credentials_file: %s: %v", sub.CredentialsFile, err)
		}
	}
	for i, m := range e.cfg.Intake.IMAP {
		var pw string
		var oc *oauth.Config
		if m.Auth == "oauth2" {
			if oc, err = e.oauthConfig(fmt.Sprintf("intake.imap[%d].oauth2", i), imapAccount(m), m.OAuth2, oauth.ForIMAP); err != nil {
				return nil, err
			}
		} else if pw, err = configs.ReadSecret(m.PasswordFile); err != nil {
			return nil, usageErr("intake.imap[%d].password_file: %v", i, unwrapPathErr(err))
		}
		sec.imapPasswords = append(sec.imapPasswords, pw)
		sec.imapOAuth2 = append(sec.imapOAuth2, oc)
	}
	if n := e.cfg.Notify; n.Relay != "" && n.RelayAuth == "oauth2" {
		if sec.relayOAuth2, err = e.oauthConfig("notify.relay_oauth2", relayAccount(n), n.RelayOAuth2, oauth.ForSMTP); err != nil {
			return nil, err
		}
	}
	if n := e.cfg.Notify; n.Relay != "" && n.RelayPasswordFile != "" {
		if sec.relayPassword, err = configs.ReadSecret(n.RelayPasswordFile); err != nil {
			return nil, usageErr("notify.relay_password_file: %v", unwrapPathErr(err))
		}
	}
	if n := e.cfg.Notify; n.Relay != "" {
		var ca []byte
		if n.RelayCAFile != "" {
			if ca, err = os.ReadFile(n.RelayCAFile); err != nil {
				return nil, usageErr("notify.relay_ca_file: %v", unwrapPathErr(err))
			}
		}
		if sec.relayTLS, err = notify.RelayTLSConfig(n.Relay, ca); err != nil {
			return nil, usageErr("notify.relay_ca_file: %s: %v", n.RelayCAFile, err)
		}
	}
	if f := e.cfg.Notify.Alert.WebhookSecretFile; f != "" {
		w, err := configs.ReadSecret(f)
		if err != nil {
			return nil, usageErr("notify.alert.webhook_secret_file: %v", unwrapPathErr(err))
		}
		sec.webhook = []byte(w)
	}
	return &sec, nil
}

// fdReserve is what the store (its pools, SQLite's files), the log, the
// outbox and the pollers may need of file descriptors besides the
// listeners' connections.
const fdReserve = 128

// httpConnLimit is http.max_connections, lowered (with a warning) so that
// the HTTP connections and every SMTP slot together leave fdReserve
// descriptors of the process's limit: idle HTTP keep-alives once took
// every descriptor, and SMTP's accept failed with "too many open files".
func (e *env) httpConnLimit() int {
	want := e.cfg.HTTP.MaxConnections
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return want
	}
	smtp := e.cfg.Intake.SMTP.MaxConnections
	if e.cfg.Intake.Submission.Listen != "" {
		smtp *= 2 // the submission listener has the same limits
	}
	room := int(rl.Cur) - smtp - fdReserve
	if want <= room {
		return want
	}
	got := max(room, 16)
	e.log.Warn("http.max_connections lowered to fit the file descriptor limit", "configured", want, "now", got,
		"nofile", rl.Cur, "smtp_slots", smtp, "reserve", fdReserve)
	return got
}

// imapAccount names a mailbox's OAuth2 account: the store's key for its
// refresh token and the metric's label.
func imapAccount(m configs.IMAP) string { return "imap:" + m.Username + "@" + m.Address }

// relayAccount names the relay's.
func relayAccount(n configs.Notify) string { return "relay:" + n.RelayUsername + "@" + n.Relay }

// oauthConfig reads an account's OAuth2 secrets (key names them in
// errors) and fills in its provider's endpoints and scopes.
func (e *env) oauthConfig(key, account string, o *configs.OAuth2, purpose string) (*oauth.Config, error) {
	cc := o.ClientCredentials()
	tokenURL, deviceURL, scopes, err := oauth.Preset(o.Provider, o.Tenant, purpose, cc)
	if err != nil {
		return nil, usageErr("%s: %v", key, err)
	}
	c := &oauth.Config{Account: account, TokenURL: tokenURL, DeviceAuthURL: deviceURL, ClientID: o.ClientID, Scopes: scopes, RefreshGrant: !cc}
	if o.TokenURL != "" {
		c.TokenURL = o.TokenURL
	}
	if o.DeviceAuthURL != "" {
		c.DeviceAuthURL = o.DeviceAuthURL
	}
	if len(o.Scopes) > 0 {
		c.Scopes = o.Scopes
	}
	if o.ClientSecretFile != "" {
		if c.ClientSecret, err = configs.ReadSecret(o.ClientSecretFile); err != nil {
			return nil, usageErr("%s.client_secret_file: %v", key, unwrapPathErr(err))
		}
	}
	if o.RefreshTokenFile != "" {
		if c.Seed, err = configs.ReadSecret(o.RefreshTokenFile); err != nil {
			return nil, usageErr("%s.refresh_token_file: %v", key, unwrapPathErr(err))
		}
	}
	return c, nil
}

// cmdServe runs the daemon: workers, the SMTP listener, the outbox writer
// and the HTTP listener. SIGTERM/SIGINT: listeners stop accepting, in-flight
// work finishes, exit 0 within 10 s.
func (e *env) cmdServe(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usageErr("serve takes no arguments")
	}
	// Every secret and certificate is read before the store is opened
	// and anything is bound: a missing or unreadable one stops serve with
	// exit status 2 naming its key, never after it has taken mail.
	sec, err := e.loadSecrets()
	if err != nil {
		return err
	}
	keys, s, err := e.keysAndStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	reg := prometheus.DefaultRegisterer
	if err := reg.Register(&queueCollector{s: s}); err != nil {
		return runErr("metrics: %v", err)
	}
	var ready atomic.Bool
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()

	// HTTP
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.SchemaVersion(r.Context())
		switch {
		case err != nil:
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
		case v != s.LatestMigration():
			http.Error(w, "migrations not current", http.StatusServiceUnavailable)
		case !ready.Load():
			http.Error(w, "listeners not bound", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	// (/metrics is wrapped below, once the staff tokens are loaded.)
	var currentKeys atomic.Pointer[crypto.Keys]
	currentKeys.Store(keys)
	metricBuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	setKeyExpiry(keys)
	keySource := currentKeys.Load
	e.publicHandlers(mux, keySource)
	tokens := sec.tokens
	(&web.Server{Store: s, Tokens: tokens, Team: e.cfg.Team.Name, Log: e.log}).Register(mux)
	mux.Handle("/metrics", web.LoopbackOrToken(tokens, promhttp.Handler()))
	if e.cfg.HTTP.Pprof {
		// Go's profiler, when asked for, under the same rule as /metrics
		// (loopback or a staff token): where a busy daemon's CPU goes.
		mux.Handle("/debug/pprof/", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", web.LoopbackOrToken(tokens, http.HandlerFunc(pprof.Trace)))
	}
	hl, err := net.Listen("tcp", e.cfg.HTTP.Listen)
	if err != nil {
		return runErr("http listen %s: %v", e.cfg.HTTP.Listen, err)
	}
	hc := e.cfg.HTTP
	hl = netutil.LimitListener(hl, e.httpConnLimit())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: min(10*time.Second, hc.ReadTimeout), ReadTimeout: hc.ReadTimeout,
		WriteTimeout: hc.WriteTimeout, IdleTimeout: hc.IdleTimeout, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("http", "err", err)
		}
	}()

	if d := e.cfg.Intake.SMTP.SpillDir; d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return runErr("intake.smtp.spill_dir: %v", err)
		}
	}
	// SMTP and LMTP share one group committer: concurrent arrivals are
	// made durable by one commit, each 250 after the commit holding it.
	committer := store.NewCommitter(s, 64)
	defer committer.Close()
	tlsConf := sec.tls
	if tlsConf != nil {
		if leaf, err := x509.ParseCertificate(tlsConf.Certificates[0].Certificate[0]); err == nil {
			metricCertExpiry.Set(float64(leaf.NotAfter.Unix()))
		}
	}
	type mailServer interface {
		Shutdown(context.Context) error
		Close() error
	}
	var mailSrvs []mailServer
	startMail := func(listen string, lmtp bool, creds *intake.Credentials) (string, error) {
		c := e.cfg.Intake.SMTP
		b := &intake.Backend{Store: committer, Log: e.log, Spooled: wake, Credentials: creds, RequireAuth: creds != nil, Config: intake.SMTPConfig{
			Recipients: c.Recipients, MaxMessageBytes: c.MaxMessageBytes, Hostname: e.hostname(), LMTP: lmtp,
			TLS: tlsConf, MaxRecipients: c.MaxRecipients, MaxMessagesPerConn: c.MaxMessagesPerConnection, MaxAuthFailures: c.MaxAuthFailures,
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
				e.log.Error("mail listener", "listen", listen, "err", err)
			}
		}()
		mailSrvs = append(mailSrvs, srv)
		return l.Addr().String(), nil
	}
	smtpAddr, lmtpAddr := "", ""
	if !e.cfg.Intake.SMTP.Disabled && e.cfg.Intake.SMTP.Listen != "" {
		if smtpAddr, err = startMail(e.cfg.Intake.SMTP.Listen, false, nil); err != nil {
			return runErr("smtp listen %s: %v", e.cfg.Intake.SMTP.Listen, err)
		}
	}
	if e.cfg.Intake.LMTP.Listen != "" {
		if lmtpAddr, err = startMail(e.cfg.Intake.LMTP.Listen, true, nil); err != nil {
			return runErr("lmtp listen %s: %v", e.cfg.Intake.LMTP.Listen, err)
		}
	}
	if sub := e.cfg.Intake.Submission; sub.Listen != "" {
		addr, err := startMail(sub.Listen, false, sec.submission)
		if err != nil {
			return runErr("submission listen %s: %v", sub.Listen, err)
		}
		e.log.Info("submission listener", "addr", addr)
	}

	// IMAP pollers: one goroutine per mailbox, each holding the mailbox's
	// lock (a PostgreSQL advisory lock: one daemon polls it at a time).
	pollCtx, stopPolls := context.WithCancel(context.Background())
	defer stopPolls()
	var polls sync.WaitGroup
	for i, m := range e.cfg.Intake.IMAP {
		pw := sec.imapPasswords[i]
		var src *oauth.Source
		if oc := sec.imapOAuth2[i]; oc != nil {
			src = oauth.NewSource(*oc, s, e.log)
		}
		p := &intake.Poller{Store: s, Log: e.log, Spooled: wake, Cfg: intake.IMAPConfig{
			Address: m.Address, TLS: m.TLS, Username: m.Username, Password: pw, OAuth2: src, Mailbox: m.Mailbox,
			ProcessedMailbox: m.ProcessedMailbox, PollInterval: m.PollInterval, MaxMessage: e.cfg.Intake.SMTP.MaxMessageBytes}}
		polls.Add(1)
		go func() { defer polls.Done(); p.Run(pollCtx) }()
	}

	// Workers and outbox
	proc := e.processor(s, keys, false)
	proc.KeySource = keySource
	proc.Observe = func(outcome string, d time.Duration) {
		metricProcessed.WithLabelValues(outcome).Inc()
		metricProcessSeconds.Observe(d.Seconds())
	}
	host, _ := os.Hostname()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if !e.cfg.Pipeline.Enabled {
			e.log.Info("pipeline disabled: intake only, filing left to other daemons")
			<-workCtx.Done()
			return
		}
		proc.Run(workCtx, fmt.Sprintf("%s/%d", host, os.Getpid()), e.cfg.Pipeline.WorkerCount(), wake)
	}()
	ow := &notify.Writer{Store: s, Dir: e.cfg.Notify.OutboxDir, Log: e.log, KeySource: keySource,
		Team:        notify.Team{Name: e.cfg.Team.Name, Address: e.cfg.Team.Address, Hours: e.cfg.Team.Hours, Timezone: e.cfg.Team.Timezone},
		TemplateDir: e.cfg.Notify.TemplatesDir, JapaneseCharset: e.cfg.Notify.JapaneseCharset,
		RatePerHour: e.cfg.Notify.RatePerHour, DomainPerHour: e.cfg.Notify.RatePerDomainPerHour, GlobalPerHour: e.cfg.Notify.RateGlobalPerHour,
		SubaddressSeparators: e.cfg.Notify.SubaddressSeparators, MaxAttempts: e.cfg.Notify.MaxAttempts, Lease: max(e.cfg.Pipeline.Lease, 5*time.Second),
		AlertInternal: e.cfg.Notify.Alert.Internal}
	if os.Getenv("MADOGUCHI_TEST_DIE_AFTER_DELIVERY") == "1" {
		// For the crash test only: die like kill -9 in the one window
		// where an acknowledgement is delivered but not yet marked sent.
		ow.AfterDeliver = func(store.OutboxEntry) { os.Exit(137) }
	}
	ow.WebhookSecret = sec.webhook
	if n := e.cfg.Notify; n.Relay != "" {
		relay := &notify.Relay{Addr: n.Relay, TLS: n.RelayTLS, Username: n.RelayUsername, Password: sec.relayPassword, Hostname: e.hostname(),
			TLSConfig: sec.relayTLS}
		if sec.relayOAuth2 != nil {
			relay.OAuth2 = oauth.NewSource(*sec.relayOAuth2, s, e.log)
		}
		ow.Deliver = relay
	}
	go func() { defer wg.Done(); ow.Run(workCtx) }()
	ready.Store(true)
	e.log.Info("madoguchi serving", "smtp", smtpAddr, "lmtp", lmtpAddr, "http", hl.Addr().String(), "store", e.cfg.Store.Driver)
	fmt.Fprintf(e.stderr, "madoguchi: serving smtp=%s http=%s lmtp=%s\n", smtpAddr, hl.Addr().String(), lmtpAddr)

	// SIGHUP reloads the team keys and the keyring without a restart; a
	// reload that fails keeps the keys in use and says why.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-hup:
			k, err := e.loadKeys()
			if err != nil {
				metricKeyReloads.WithLabelValues("failed").Inc()
				e.log.Error("SIGHUP: keys not reloaded; the previous keys stay in use", "err", err)
				continue
			}
			currentKeys.Store(k)
			setKeyExpiry(k)
			metricKeyReloads.WithLabelValues("ok").Inc()
			e.log.Info("SIGHUP: keys reloaded", "team", len(k.TeamKeys()), "known", k.KnownCount())
		}
	}
	e.log.Info("shutting down")
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	for _, srv := range mailSrvs {
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}
	stopPolls()
	polls.Wait()
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		e.log.Warn("workers did not stop in time; their claims return after the lease")
	}
	_ = hs.Shutdown(sctx)
	return nil
}

// listenAddr listens on "unix:/path" (a stale socket file is replaced) or a
// TCP host:port.
func listenAddr(a string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, err
		}
		return net.Listen("unix", p)
	}
	return net.Listen("tcp", a)
}

func setKeyExpiry(k *crypto.Keys) {
	metricKeyExpiry.Reset()
	for _, tk := range k.TeamKeys() {
		v := 0.0
		if !tk.Expires.IsZero() {
			v = float64(tk.Expires.Unix())
		}
		metricKeyExpiry.WithLabelValues(tk.Fingerprint).Set(v)
	}
}
