// Package app is the daemon: New loads the configuration's secrets, keys,
// certificates and constituents, opens and migrates the store and builds
// every part (intake listeners, IMAP pollers, the pipeline, the outbox
// writer and the noticer, the HTTP server) without binding anything, so
// that whatever is missing stops it before mail is taken; Start binds and
// starts them, Run runs until its context ends, Shutdown stops them in
// order. Env is the loaded configuration the one-shot commands share.
// Everything is a field: the Prometheus registry, the keys and the
// constituents (swapped whole on SIGHUP), the metrics.
package app
