package notify

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the outbox writer's Prometheus metrics.
type Metrics struct {
	Deliveries *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (none when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_notify_deliveries_total", Help: "Outbox delivery outcomes (sent, retry, dead, skipped, postponed).",
	}, []string{"outcome"})}
	if reg != nil {
		reg.MustRegister(m.Deliveries)
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
