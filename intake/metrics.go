package intake

import "github.com/prometheus/client_golang/prometheus"

// Metrics are intake's Prometheus metrics. A daemon makes one set with
// NewMetrics and gives it to every listener and poller; a part given none
// counts into a set of its own that nobody reads.
type Metrics struct {
	Received     *prometheus.CounterVec
	Refused      *prometheus.CounterVec
	Bytes        *prometheus.CounterVec
	SpoolSeconds *prometheus.HistogramVec
	IMAPLastPass *prometheus.GaugeVec
	IMAPHeld     *prometheus.GaugeVec
	IMAPErrors   *prometheus.CounterVec
}

// NewMetrics makes intake's metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_intake_received_total", Help: "Messages spooled, by channel (smtp, lmtp, imap, import).",
		}, []string{"channel"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_intake_refused_total", Help: "Messages or recipients refused, by channel and reason (recipient, size, spool-error).",
		}, []string{"channel", "reason"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_intake_bytes_total", Help: "Bytes spooled, by channel.",
		}, []string{"channel"}),
		SpoolSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "madoguchi_intake_spool_seconds", Help: "Time from end of DATA to durable spool commit, by channel.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}, []string{"channel"}),
		IMAPLastPass: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "madoguchi_imap_last_pass_timestamp_seconds", Help: "When the poller last finished a pass over the mailbox (poll lag: time() minus this).",
		}, []string{"mailbox"}),
		IMAPHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "madoguchi_imap_oversize_held", Help: "Messages left in the mailbox for being over the size limit (each has an incident), by mailbox.",
		}, []string{"mailbox"}),
		IMAPErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_imap_session_errors_total", Help: "IMAP sessions that ended in an error (followed by a reconnect), by mailbox.",
		}, []string{"mailbox"}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Refused, m.Bytes, m.SpoolSeconds, m.IMAPLastPass, m.IMAPHeld, m.IMAPErrors)
	}
	return m
}
