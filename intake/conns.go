package intake

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"crypto/tls"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// ConnLimits bound what one client can hold of an SMTP listener. A
// public point of contact is attacked: a stranger must not keep slots by
// being slow, by talking without ever sending a message, or by opening
// many connections. Zero values take the defaults below.
type ConnLimits struct {
	// MaxConnections at once (0: unlimited). When every slot is taken,
	// the listener is busy: timeouts shrink to BusyTimeout, and a new
	// client gets in by closing the session that has gone longest
	// without a transaction step (never one in DATA).
	MaxConnections int
	// MaxPerClient connections from one client: an IPv4 address, or an
	// IPv6 prefix of IPv6Prefix bits (a host gets a /64 to itself).
	MaxPerClient int
	IPv6Prefix   int // default 64
	// Timeout: the longest wait for the client's next bytes (default 2m).
	Timeout time.Duration
	// BusyTimeout replaces Timeout and ProgressTimeout while the listener
	// is busy (default 10s), as Postfix's stress mode does.
	BusyTimeout time.Duration
	// ProgressTimeout: the longest a session may go without a
	// transaction step (MAIL, RCPT, the end of DATA, a successful AUTH),
	// whatever else it says meanwhile (NOOP, RSET, VRFY, EHLO…); default
	// 5m.
	ProgressTimeout time.Duration
	// MaxJunkCommands: commands between two transaction steps (default
	// 100). go-smtp answers NOOP, VRFY and HELP itself without telling
	// the session, so the connection counts the command lines it reads;
	// after STARTTLS, which it sees only encrypted, it counts reads (a
	// pipelined batch then counts once).
	MaxJunkCommands int
	// MaxSessionTime: the longest a session may last outside DATA
	// (default 1h).
	MaxSessionTime time.Duration
	// MinDataRate: DATA must arrive at this many bytes a second on
	// average, after a first Timeout of grace (default 1024): a slow
	// but steady upload goes through, a trickle that holds a slot does
	// not. The read deadline within DATA is for idleness (Timeout),
	// extended on every read.
	MinDataRate int64
}

func (l ConnLimits) withDefaults() ConnLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Timeout, 2*time.Minute)
	def(&l.BusyTimeout, 10*time.Second)
	def(&l.ProgressTimeout, 5*time.Minute)
	def(&l.MaxSessionTime, time.Hour)
	if l.IPv6Prefix <= 0 || l.IPv6Prefix > 128 {
		l.IPv6Prefix = 64
	}
	if l.MaxJunkCommands <= 0 {
		l.MaxJunkCommands = 100
	}
	if l.MinDataRate <= 0 {
		l.MinDataRate = 1024
	}
	return l
}

// evictAfter is how long a session must have gone without a transaction
// step before a new client may take its slot.
const evictAfter = 2 * time.Second

// connListener hands out smtpConns and keeps the limits.
type connListener struct {
	net.Listener
	lim      ConnLimits
	mu       sync.Mutex
	conns    map[*smtpConn]struct{}
	byClient map[string]int
	refused  *prometheus.CounterVec
}

func newConnListener(l net.Listener, lim ConnLimits, refused *prometheus.CounterVec) *connListener {
	return &connListener{Listener: l, lim: lim.withDefaults(), conns: map[*smtpConn]struct{}{}, byClient: map[string]int{}, refused: refused}
}

// clientKey is what the per-client limit counts by: the IPv4 address, or
// the IPv6 address's prefix of prefix bits ("" for a unix socket).
func clientKey(a net.Addr, prefix int) string {
	if a == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "" // a unix socket: no per-client limit
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(prefix)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

func (l *connListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr(), l.lim.IPv6Prefix)
		now := time.Now()
		l.mu.Lock()
		over := ""
		var evict *smtpConn
		switch {
		case l.lim.MaxPerClient > 0 && key != "" && l.byClient[key] >= l.lim.MaxPerClient:
			over = "421 4.7.0 Too many connections from your address, try again later\r\n"
		case l.lim.MaxConnections > 0 && len(l.conns) >= l.lim.MaxConnections:
			if evict = l.idlest(now); evict == nil {
				over = "421 4.7.0 Too many connections, try again later\r\n"
			}
		}
		if over != "" {
			l.mu.Unlock()
			l.refused.WithLabelValues("smtp", "connection-limit").Inc()
			_ = c.SetWriteDeadline(now.Add(2 * time.Second))
			_, _ = c.Write([]byte(over))
			_ = c.Close()
			continue
		}
		sc := &smtpConn{Conn: c, l: l, key: key, start: now, lastProgress: now}
		l.conns[sc] = struct{}{}
		l.byClient[key]++
		l.mu.Unlock()
		if evict != nil {
			l.refused.WithLabelValues("smtp", "evicted-idle").Inc()
			evict.evict()
		}
		return sc, nil
	}
}

// idlest is the session to close for a new client: outside DATA, not
// already closing, and longest without a transaction step (at least
// evictAfter). nil when there is none. l.mu is held.
func (l *connListener) idlest(now time.Time) *smtpConn {
	var best *smtpConn
	var bestAt time.Time
	for c := range l.conns {
		c.mu.Lock()
		ok, at := !c.inData && !c.evicted, c.lastProgress
		c.mu.Unlock()
		if ok && now.Sub(at) >= evictAfter && (best == nil || at.Before(bestAt)) {
			best, bestAt = c, at
		}
	}
	return best
}

// busy: every slot is taken.
func (l *connListener) busy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.MaxConnections > 0 && len(l.conns) >= l.lim.MaxConnections
}

func (l *connListener) remove(c *smtpConn) {
	l.mu.Lock()
	delete(l.conns, c)
	if l.byClient[c.key]--; l.byClient[c.key] <= 0 {
		delete(l.byClient, c.key)
	}
	l.mu.Unlock()
}

// smtpConn is one client's connection. It sets the read deadline before
// every read (go-smtp's own per-command deadline is off), from the
// session's state that the session reports (transaction steps, DATA),
// and closes itself after a reply when the session asks (every 421).
type smtpConn struct {
	net.Conn
	l     *connListener
	key   string
	start time.Time
	once  sync.Once

	mu           sync.Mutex
	lastProgress time.Time
	junk         int
	inData       bool
	dataStart    time.Time
	dataBytes    int64
	evicted      bool
	closeNext    bool
	tls          bool // a TLS handshake was seen: lines are no longer visible
}

// deadline is when the next read must have returned.
func (c *smtpConn) deadline(now time.Time, busy bool) time.Time {
	lim := c.l.lim
	idle := lim.Timeout
	if busy {
		idle = min(idle, lim.BusyTimeout)
	}
	d := now.Add(idle)
	switch {
	case c.evicted:
		return now
	case c.inData:
		rate := time.Duration(float64(c.dataBytes) / float64(lim.MinDataRate) * float64(time.Second))
		return earliest(d, c.dataStart.Add(lim.Timeout+rate))
	}
	progress := lim.ProgressTimeout
	if busy {
		progress = min(progress, lim.BusyTimeout)
	}
	if c.junk >= lim.MaxJunkCommands {
		return now
	}
	return earliest(d, c.lastProgress.Add(progress), c.start.Add(lim.MaxSessionTime))
}

func earliest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.Before(t) {
			t = u
		}
	}
	return t
}

func (c *smtpConn) Read(p []byte) (int, error) {
	busy := c.l.busy()
	c.mu.Lock()
	d := c.deadline(time.Now(), busy)
	c.mu.Unlock()
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		switch {
		case c.inData:
			c.dataBytes += int64(n)
		case c.tls || n >= 2 && p[0] == 0x16 && p[1] == 0x03: // a TLS handshake record
			c.tls = true
			c.junk++
		default:
			// Count the command lines; past the limit the rest of what was
			// read is dropped (a pipelined batch would otherwise all be
			// answered from go-smtp's buffer), and the next read ends the
			// session.
			for i := 0; i < n; i++ {
				if p[i] == '\n' {
					if c.junk++; c.junk >= c.l.lim.MaxJunkCommands {
						n = i + 1
						break
					}
				}
			}
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *smtpConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	closeNow := c.closeNext
	c.mu.Unlock()
	if closeNow {
		_ = c.Close()
	}
	return n, err
}

func (c *smtpConn) Close() error {
	c.once.Do(func() { c.l.remove(c) })
	return c.Conn.Close()
}

// evict ends the session for a new client: the pending read times out,
// go-smtp answers "421 4.4.2 Idle timeout" and closes.
func (c *smtpConn) evict() {
	c.mu.Lock()
	c.evicted = true
	c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(time.Now())
}

// progress records a transaction step.
func (c *smtpConn) progress() {
	c.mu.Lock()
	c.lastProgress, c.junk = time.Now(), 0
	c.mu.Unlock()
}

// data records the start (in) and end of DATA.
func (c *smtpConn) data(in bool) {
	c.mu.Lock()
	c.inData = in
	now := time.Now()
	if in {
		c.dataStart, c.dataBytes = now, 0
	} else {
		c.lastProgress, c.junk = now, 0
	}
	c.mu.Unlock()
}

// connOf is the smtpConn under a go-smtp connection (TLS or not), nil
// when it was not accepted by a connListener.
func connOf(sc *smtp.Conn) *smtpConn {
	if sc == nil {
		return nil
	}
	c := sc.Conn()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	cc, _ := c.(*smtpConn)
	return cc
}
