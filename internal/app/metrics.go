package app

import (
	"context"
	"sync"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/store"
	"github.com/prometheus/client_golang/prometheus"
)

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

// The queue and outbox gauges' descriptions.
var (
	queueDesc  = prometheus.NewDesc("madoguchi_queue_messages", "Work queue rows by state (ready, claimed, done, quarantined).", []string{"state"}, nil)
	outboxDesc = prometheus.NewDesc("madoguchi_outbox_messages", "Outbox rows by state (pending, sending, sent, dead, skipped, held).", []string{"state"}, nil)
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
		for _, st := range []string{store.OutboxPending, store.OutboxSending, store.OutboxSent, store.OutboxDead, store.OutboxSkipped, store.OutboxHeld} {
			ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(o[st]), st)
		}
	}
}

// metrics are the daemon's own metrics (besides those of intake, the
// pipeline, notify and the OAuth2 clients, which their packages define).
type metrics struct {
	buildInfo  *prometheus.GaugeVec
	keyExpiry  *prometheus.GaugeVec
	certExpiry prometheus.Gauge
	keyReloads *prometheus.CounterVec
	// consReloads count constituents file reloads; constituents is how
	// many are loaded.
	consReloads  *prometheus.CounterVec
	constituents prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "madoguchi_build_info", Help: "Always 1; the labels say what is running.",
		}, []string{"version", "goversion"}),
		keyExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "madoguchi_team_key_expiry_timestamp_seconds", Help: "When each team key expires (0: never).",
		}, []string{"fingerprint"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "madoguchi_tls_certificate_expiry_timestamp_seconds", Help: "When the SMTP listener's TLS certificate expires.",
		}),
		keyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_key_reloads_total", Help: "Key reloads on SIGHUP, by result (ok, failed).",
		}, []string{"result"}),
		consReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_constituents_reloads_total", Help: "Constituents file reloads on SIGHUP, by result (ok, failed).",
		}, []string{"result"}),
		constituents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "madoguchi_constituents", Help: "Constituents loaded from constituency.file.",
		}),
	}
	reg.MustRegister(m.buildInfo, m.keyExpiry, m.certExpiry, m.keyReloads, m.consReloads, m.constituents)
	return m
}

// setKeyExpiry exports when each team key expires.
func (m *metrics) setKeyExpiry(k *crypto.Keys) {
	m.keyExpiry.Reset()
	for _, tk := range k.TeamKeys() {
		v := 0.0
		if !tk.Expires.IsZero() {
			v = float64(tk.Expires.Unix())
		}
		m.keyExpiry.WithLabelValues(tk.Fingerprint).Set(v)
	}
}
