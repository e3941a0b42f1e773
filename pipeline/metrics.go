package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	Stage     *prometheus.HistogramVec
	Verdicts  *prometheus.CounterVec
	EndToEnd  prometheus.Histogram
	Processed *prometheus.CounterVec
	Seconds   prometheus.Histogram
}

// NewMetrics makes the metrics and registers them with reg (none when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "madoguchi_stage_seconds", Help: "Time per pipeline stage: unwrap (OpenPGP), parse, file (the store transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"stage"}),
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_verdicts_total", Help: "OpenPGP verdicts of processed messages, by kind (signature, decryption) and status.",
		}, []string{"kind", "status"}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "madoguchi_received_to_filed_seconds", Help: "Time from the spool commit (the 250) to the filed report.",
			// Fine around the p99 target: with doubling buckets a
			// quantile there is a guess inside one wide bucket.
			Buckets: receivedToFiledBuckets,
		}),
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "madoguchi_pipeline_messages_total", Help: "Messages processed, by outcome (new, attached, duplicate, reprocessed, failed).",
		}, []string{"outcome"}),
		Seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "madoguchi_pipeline_seconds", Help: "Time to unwrap, parse and file one message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Stage, m.Verdicts, m.EndToEnd, m.Processed, m.Seconds)
	}
	return m
}

// receivedToFiledBuckets are the bucket bounds of
// madoguchi_received_to_filed_seconds: 10 ms steps up to 150 ms, coarser
// beyond.
var receivedToFiledBuckets = []float64{
	0.001, 0.002, 0.005, 0.010, 0.020, 0.030, 0.040, 0.050, 0.060, 0.070, 0.080, 0.090,
	0.100, 0.110, 0.120, 0.130, 0.140, 0.150, 0.200, 0.300, 0.500, 0.750,
	1, 2, 4, 8, 16, 32, 64,
}

// metrics is p.Metrics, or a set of the processor's own when it was given
// none.
func (p *Processor) metrics() *Metrics {
	p.metricsOnce.Do(func() {
		if p.Metrics == nil {
			p.Metrics = NewMetrics(nil)
		}
	})
	return p.Metrics
}
