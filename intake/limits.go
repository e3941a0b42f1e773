package intake

import (
	"net"
	"sync"
	"time"
)

// LimitListener bounds the connections a listener hands to the SMTP server:
// at most total at once, and at most perIP from one client address. A
// connection over a limit gets "421 4.7.0" and is closed at once, before any
// goroutine or buffer of the server is spent on it, so one client opening
// connections in a loop cannot starve the others.
func LimitListener(l net.Listener, total, perIP int) net.Listener {
	return &limitListener{Listener: l, total: total, perIP: perIP, byIP: map[string]int{}}
}

type limitListener struct {
	net.Listener
	total, perIP int
	mu           sync.Mutex
	open         int
	byIP         map[string]int
}

func hostOfAddr(a net.Addr) string {
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String() // a unix socket: one "client"
	}
	return h
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOfAddr(c.RemoteAddr())
		l.mu.Lock()
		over := ""
		switch {
		case l.total > 0 && l.open >= l.total:
			over = "421 4.7.0 Too many connections, try again later\r\n"
		case l.perIP > 0 && l.byIP[ip] >= l.perIP && ip != "":
			over = "421 4.7.0 Too many connections from your address, try again later\r\n"
		default:
			l.open++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if over != "" {
			metricRefused.WithLabelValues("smtp", "connection-limit").Inc()
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte(over))
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
