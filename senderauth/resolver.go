package senderauth

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Resolver is the DNS of the checks: a net.Resolver (the system's, or one
// that asks a given server), each lookup bounded by LookupTimeout, TXT
// answers (DKIM keys, SPF and DMARC records: nearly every lookup) cached
// for CacheTTL, and names that do not exist for a minute. Failures that
// may pass (timeouts, SERVFAIL) are not cached.
type Resolver struct {
	net           *net.Resolver
	LookupTimeout time.Duration
	CacheTTL      time.Duration
	MaxEntries    int

	mu    sync.Mutex
	cache map[string]txtEntry
	now   func() time.Time
}

type txtEntry struct {
	txt     []string
	err     error
	expires time.Time
}

// NewResolver asks server ("host:port") over UDP, or the system's
// resolver when server is "".
func NewResolver(server string) *Resolver {
	r := &Resolver{net: net.DefaultResolver, LookupTimeout: 3 * time.Second, CacheTTL: 5 * time.Minute, MaxEntries: 10000,
		cache: map[string]txtEntry{}, now: time.Now}
	if server != "" {
		var d net.Dialer
		r.net = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		}}
	}
	return r
}

func (r *Resolver) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.LookupTimeout)
}

// LookupTXT implements spf.DNSResolver, through the cache.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	r.mu.Lock()
	e, ok := r.cache[name]
	r.mu.Unlock()
	if ok && r.now().Before(e.expires) {
		return e.txt, e.err
	}
	lctx, cancel := r.bounded(ctx)
	defer cancel()
	txt, err := r.net.LookupTXT(lctx, name)
	var dnsErr *net.DNSError
	ttl := r.CacheTTL
	switch {
	case err == nil:
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		ttl = time.Minute
	default:
		return nil, err
	}
	r.mu.Lock()
	if len(r.cache) >= r.MaxEntries {
		for k, v := range r.cache {
			if !r.now().Before(v.expires) || len(r.cache) >= r.MaxEntries {
				delete(r.cache, k)
			}
		}
	}
	r.cache[name] = txtEntry{txt, err, r.now().Add(ttl)}
	r.mu.Unlock()
	return txt, err
}

// LookupMX implements spf.DNSResolver.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	return r.net.LookupMX(ctx, name)
}

// LookupIPAddr implements spf.DNSResolver.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	return r.net.LookupIPAddr(ctx, host)
}

// LookupAddr implements spf.DNSResolver.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	return r.net.LookupAddr(ctx, addr)
}
