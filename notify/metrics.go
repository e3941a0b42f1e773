package notify

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the outbox writer's Prometheus metrics.
type Metrics struct {
	Deliveries *prometheus.CounterVec
	// Notices count constituents' notices by state: queued and held (by
	// the noticer), sent and dead (by the writer), per outbox row.
	Notices *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (none when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_notify_deliveries_total", Help: "Outbox delivery outcomes (sent, retry, dead, skipped, postponed).",
	}, []string{"outcome"}),
		Notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_notices_total", Help: "Notices to constituents' contacts by constituent and state (queued, held, sent, dead).",
		}, []string{"constituent", "state"})}
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.Notices)
	}
	return m
}

// metrics is w.Metrics, or a set of the writer's own when it was given none.
func (w *Writer) metrics() *Metrics {
	w.metricsOnce.Do(func() {
		if w.Metrics == nil {
			w.Metrics = NewMetrics(nil)
		}
	})
	return w.Metrics
}
