package intake

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// dialFrom connects to addr from a loopback address of its own (Linux
// routes all of 127/8 to lo), as a distinct client.
func dialFrom(t *testing.T, from, addr string) *textproto.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return textproto.NewConn(c)
}

// noopUntilClosed says NOOP every interval until the server closes the
// connection, and returns how long that took and the last reply.
func noopUntilClosed(tc *textproto.Conn, interval, limit time.Duration) (time.Duration, string) {
	start := time.Now()
	last := ""
	for time.Since(start) < limit {
		if err := tc.PrintfLine("NOOP"); err != nil {
			return time.Since(start), last
		}
		code, msg, err := tc.ReadResponse(0)
		if err != nil && code == 0 {
			return time.Since(start), last
		}
		last = fmt.Sprintf("%d %s", code, msg)
		if code == 421 {
			if _, err := tc.ReadLine(); err != nil { // closed after the 421
				return time.Since(start), last
			}
		}
		time.Sleep(interval)
	}
	return time.Since(start), last
}

// TestIdleSessionsCannotHoldTheSlots: six connections from three
// addresses saying NOOP every 100 ms fill a server with six slots; a new
// client still gets in (the session idle longest is closed for it), and
// every NOOP-only session is closed once it has gone ProgressTimeout
// without a transaction step.
func TestIdleSessionsCannotHoldTheSlots(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{Conns: ConnLimits{MaxConnections: 6, MaxPerClient: 2,
		Timeout: 10 * time.Second, BusyTimeout: 5 * time.Second, ProgressTimeout: 4 * time.Second}})
	var wg sync.WaitGroup
	held := make([]time.Duration, 6)
	ready := make(chan struct{}, 6)
	for i := range 6 {
		tc := dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i/2), addr)
		if _, _, err := tc.ReadResponse(220); err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		_ = tc.PrintfLine("EHLO attacker")
		_, _, _ = tc.ReadResponse(250)
		ready <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i], _ = noopUntilClosed(tc, 100*time.Millisecond, 20*time.Second)
		}()
	}
	for range 6 {
		<-ready
	}
	// Every slot is held; a seventh client from a fresh address.
	time.Sleep(evictAfter + 200*time.Millisecond) // the attackers' sessions become evictable
	tc := dialFrom(t, "127.0.0.9", addr)
	code, msg, err := tc.ReadResponse(220)
	if err != nil {
		t.Fatalf("a new client was refused while idle sessions held every slot: %d %s %v", code, msg, err)
	}
	_ = tc.PrintfLine("EHLO reporter")
	_, _, _ = tc.ReadResponse(250)
	for _, step := range []struct {
		cmd  string
		want int
	}{{"MAIL FROM:<r@reporter.example>", 250}, {"RCPT TO:<csirt@example.org>", 250}, {"DATA", 354}, {msg2 + "\r\n.", 250}} {
		_ = tc.PrintfLine("%s", step.cmd)
		if code, msg, err := tc.ReadResponse(step.want); err != nil {
			t.Fatalf("%s: %d %s %v", strings.SplitN(step.cmd, "\r\n", 2)[0], code, msg, err)
		}
	}
	wg.Wait()
	for i, d := range held {
		if d > 8*time.Second {
			t.Errorf("attacker %d held its slot for %v saying NOOP", i, d)
		}
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d spooled, want the new client's one", n)
	}
}

const msg2 = "From: r@reporter.example\r\nTo: csirt@example.org\r\nSubject: report\r\n\r\nhttp://evil.example/"

// TestJunkCommandsLimited: commands that move no transaction forward are
// limited in number too, however fast they come.
func TestJunkCommandsLimited(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{Conns: ConnLimits{MaxJunkCommands: 20}})
	tc := dialFrom(t, "127.0.0.2", addr)
	_, _, _ = tc.ReadResponse(220)
	n := 0
	for ; n < 200; n++ {
		if err := tc.PrintfLine("NOOP"); err != nil {
			break
		}
		code, _, err := tc.ReadResponse(250)
		if err != nil || code != 250 {
			break
		}
	}
	if n != 20 {
		t.Fatalf("cut off after %d NOOPs, want 20", n)
	}
	// Pipelined, each command counts.
	tc = dialFrom(t, "127.0.0.3", addr)
	_, _, _ = tc.ReadResponse(220)
	_ = tc.PrintfLine("%s", strings.TrimSuffix(strings.Repeat("NOOP\r\n", 30), "\r\n"))
	ok := 0
	for range 30 {
		if code, _, err := tc.ReadResponse(250); err != nil || code != 250 {
			break
		}
		ok++
	}
	if ok >= 30 {
		t.Fatal("30 pipelined NOOPs all answered with a limit of 20")
	}
}

// TestSlowSteadyUploadGoesThrough: the read deadline in DATA is for
// idleness: a report arriving steadily for longer than the timeout is
// taken, while a trickle below the minimum rate is cut off.
func TestSlowSteadyUploadGoesThrough(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{MaxMessageBytes: 1 << 20, Conns: ConnLimits{Timeout: time.Second, MinDataRate: 4096}})
	send := func(chunk int, every time.Duration, total int) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		tc := textproto.NewConn(c)
		_, _, _ = tc.ReadResponse(220)
		for _, cmd := range []string{"HELO slow", "MAIL FROM:<r@reporter.example>", "RCPT TO:<csirt@example.org>", "DATA"} {
			_ = tc.PrintfLine("%s", cmd)
			if _, _, err := tc.ReadResponse(0); err != nil && !strings.HasPrefix(err.Error(), "354") {
				return fmt.Errorf("%s: %w", cmd, err)
			}
		}
		_, _ = c.Write([]byte("Subject: slow\r\n\r\n"))
		line := strings.Repeat("x", 62) + "\r\n"
		buf := make([]byte, 512)
		for sent := 0; sent < total; sent += chunk {
			if _, err := c.Write([]byte(strings.Repeat(line, chunk/64))); err != nil {
				return err
			}
			// Has the server answered (421) or closed meanwhile?
			_ = c.SetReadDeadline(time.Now().Add(every))
			if n, err := c.Read(buf); n > 0 || err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("cut off after %d bytes: %q %v", sent, buf[:n], err)
			}
		}
		_, _ = c.Write([]byte(".\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		code, msg, err := tc.ReadResponse(250)
		if err != nil {
			return fmt.Errorf("%d %s: %w", code, msg, err)
		}
		return nil
	}
	// 8 KiB/s for 3 s: three times the timeout, at twice the minimum rate.
	if err := send(2048, 250*time.Millisecond, 24<<10); err != nil {
		t.Fatalf("a slow but steady upload was cut off: %v", err)
	}
	// 1 KiB/s: a quarter of the minimum.
	start := time.Now()
	if err := send(256, 250*time.Millisecond, 16<<10); err == nil || !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("a trickle below the minimum rate: %v, want it cut off", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("the trickle held its slot for %v", d)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d spooled", n)
	}
}

// TestIPv6ClientsCountedPerPrefix: the per-client limit counts an IPv6
// client by its /64 (configurable), an IPv4-mapped address as IPv4.
func TestIPv6ClientsCountedPerPrefix(t *testing.T) {
	addr := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, c := range []struct {
		a, b   string
		prefix int
		same   bool
	}{
		{"[2001:db8::1]:25", "[2001:db8::ffff:2]:25", 64, true},
		{"[2001:db8::1]:25", "[2001:db8:0:1::1]:25", 64, false},
		{"[2001:db8::1]:25", "[2001:db8:0:1::1]:25", 48, true},
		{"[2001:db8::1]:25", "[2001:db8::2]:25", 128, false},
		{"[::ffff:192.0.2.1]:25", "192.0.2.1:26", 64, true},
		{"192.0.2.1:25", "192.0.2.2:25", 64, false},
	} {
		ka, kb := clientKey(addr(c.a), c.prefix), clientKey(addr(c.b), c.prefix)
		if (ka == kb) != c.same || ka == "" {
			t.Errorf("/%d: %s -> %q, %s -> %q, same %v", c.prefix, c.a, ka, c.b, kb, c.same)
		}
	}
}

// TestAuthGuessingIsBounded: a few failed AUTH close the connection, and
// a client that keeps guessing across connections is refused before any
// password is hashed.
func TestAuthGuessingIsBounded(t *testing.T) {
	s := openStore(t)
	l := tcpListener(t)
	srv := NewServer(&Backend{Store: s, Log: discardLog(), Credentials: testCredentials(t), RequireAuth: true, Config: SMTPConfig{
		Recipients: []string{"csirt@example.org"}, MaxMessageBytes: 1 << 20, MaxAuthFailures: 2,
		TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}}})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	guess := func() []error {
		c, err := smtp.DialStartTLS(l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var errs []error
		for i := range 3 {
			err := c.Auth(sasl.NewPlainClient("", "alice", fmt.Sprintf("guess-%d", i)))
			errs = append(errs, err)
			if err == nil {
				t.Fatal("a guess was taken")
			}
		}
		return errs
	}
	errs := guess()
	if !strings.Contains(errs[0].Error(), "535") || !strings.Contains(errs[1].Error(), "421") || strings.Contains(errs[2].Error(), "535") {
		t.Fatalf("one connection's guesses: %v", errs)
	}
	// 2 failures a connection; after ten times the limit (20) the
	// client's AUTH is refused at once.
	for range 9 {
		guess()
	}
	start := time.Now()
	errs = guess()
	if !strings.Contains(errs[0].Error(), "421") || !strings.Contains(errs[0].Error(), "Too many failed") {
		t.Fatalf("a client past its budget: %v", errs)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the refusal took %v", d)
	}
}
