package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var metricOutbox = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "madoguchi_notify_deliveries_total", Help: "Outbox delivery outcomes (sent, retry, dead, skipped, postponed).",
}, []string{"outcome"})
