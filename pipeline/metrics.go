package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricStage = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "madoguchi_stage_seconds", Help: "Time per pipeline stage: unwrap (OpenPGP), parse, file (the store transaction).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"stage"})
	metricVerdicts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "madoguchi_verdicts_total", Help: "OpenPGP verdicts of processed messages, by kind (signature, decryption) and status.",
	}, []string{"kind", "status"})
	metricEndToEnd = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "madoguchi_received_to_filed_seconds", Help: "Time from the spool commit (the 250) to the filed report.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
)
