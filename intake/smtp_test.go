package intake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

// These tests run the listener on a real store (SQLite in a temp dir) and
// talk to it with go-smtp's client or raw SMTP lines.

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// serve starts a listener on l for sp and returns its address.
func serve(t *testing.T, l net.Listener, sp Spooler, cfg SMTPConfig) string {
	t.Helper()
	if cfg.Recipients == nil {
		cfg.Recipients = []string{"csirt@example.org", "abuse@example.org"}
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 10
	}
	srv := NewServer(&Backend{Store: sp, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: cfg})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func tcpListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func queued(t *testing.T, s store.Store) int {
	t.Helper()
	c, err := s.QueueCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c[store.StateReady]
}

const msg = "From: r@reporter.example\r\nTo: csirt@example.org\r\nSubject: phishing\r\n\r\nhttp://evil.example/\r\n"

// TestLMTPStatusPerRecipient: over a unix socket, each accepted recipient
// gets its own 250 after DATA, a foreign one its 550, and the message is
// spooled once for both, on the lmtp channel.
func TestLMTPStatusPerRecipient(t *testing.T) {
	s := openStore(t)
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, store.NewCommitter(s, 8), SMTPConfig{LMTP: true})
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mta.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("r@reporter.example", nil); err != nil {
		t.Fatal(err)
	}
	for _, rc := range []string{"csirt@example.org", "abuse@example.org"} {
		if err := c.Rcpt(rc, nil); err != nil {
			t.Fatal(err)
		}
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("root@example.org", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("foreign recipient: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, msg)
	st, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st["csirt@example.org"] == nil || st["abuse@example.org"] == nil {
		t.Fatalf("per-recipient statuses: %v", st)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d spooled, want 1", n)
	}
	m, err := s.GetMessage(context.Background(), 1)
	if err != nil || m.Channel != store.ChannelLMTP || len(m.RcptTo) != 2 || string(m.Raw) != msg {
		t.Fatalf("spooled %+v, %v", m, err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.org"},
		DNSNames: []string{"mx.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestSTARTTLS: the listener offers STARTTLS with the configured
// certificate and takes a message over the encrypted channel.
func TestSTARTTLS(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}})
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.SendMail("r@reporter.example", []string{"csirt@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if st, ok := c.TLSConnectionState(); !ok || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "mx.example.org" {
		t.Fatalf("not on TLS with our certificate: %v", ok)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d spooled", n)
	}
}

// sendPlain sends one message without TLS (go-smtp's SendMail insists on
// STARTTLS).
func sendPlain(t *testing.T, addr, body string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.SendMail("r@reporter.example", []string{"csirt@example.org"}, strings.NewReader(body))
}

// TestRefusals: oversize (552 5.3.4, nothing spooled), store down (451
// 4.3.0, never a 5xx that would bounce the report), too many messages on
// one connection (421).
func TestRefusals(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{MaxMessageBytes: 4096, MaxMessagesPerConn: 2})
	big := msg + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 100)
	long := msg + strings.Repeat("y", 3000) + "\r\n" // over 998 octets: taken, as Postfix does
	if err := sendPlain(t, addr, long); err != nil {
		t.Fatalf("long line: %v", err)
	}
	var se *smtp.SMTPError
	if err := sendPlain(t, addr, big); !errors.As(err, &se) || se.Code != 552 || se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("oversize: %v", err)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d spooled, want the long-line message only", n)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		err := c.SendMail("r@reporter.example", []string{"csirt@example.org"}, strings.NewReader(msg))
		if i < 2 && err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i == 2 && (!errors.As(err, &se) || se.Code != 421) {
			t.Fatalf("third message on one connection: %v", err)
		}
	}

	down := openStore(t)
	addr = serve(t, tcpListener(t), down, SMTPConfig{})
	_ = down.Close()
	if err := sendPlain(t, addr, msg); !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("store down: %v", err)
	}
}

// TestConnectionLimitPerIP: a third connection from one address while two
// are open gets 421 4.7.0 at once; when one closes, a new one is served.
func TestConnectionLimitPerIP(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{Conns: ConnLimits{MaxConnections: 100, MaxPerClient: 2}})
	greet := func() (*textproto.Conn, string) {
		c, err := textproto.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		line, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		return c, line
	}
	a, l1 := greet()
	b, l2 := greet()
	c, l3 := greet()
	defer b.Close()
	if !strings.HasPrefix(l1, "220") || !strings.HasPrefix(l2, "220") || !strings.HasPrefix(l3, "421 4.7.0") {
		t.Fatalf("greetings: %q %q %q", l1, l2, l3)
	}
	_ = c.Close()
	_ = a.PrintfLine("QUIT")
	_, _ = a.ReadLine()
	_ = a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, l4 := greet()
		_ = d.Close()
		if strings.HasPrefix(l4, "220") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot was not reused: %q", l4)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInputReplies: protocol abuse gets the replies a mature MTA gives
// and the server goes on.
func TestBadInputReplies(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{MaxRecipients: 5})
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect := func(code int) {
		t.Helper()
		if _, _, err := c.ReadResponse(code); err != nil {
			t.Fatalf("want %d: %v", code, err)
		}
	}
	expect(220)
	_ = c.PrintfLine("EHLO client.example")
	expect(250)
	_ = c.PrintfLine("DATA")
	expect(502) // go-smtp: DATA before MAIL/RCPT is refused (5xx)
	_ = c.PrintfLine("MAIL FROM:<r@reporter.example>")
	expect(250)
	for range 5 {
		_ = c.PrintfLine("RCPT TO:<csirt@example.org>")
		expect(250)
	}
	_ = c.PrintfLine("RCPT TO:<csirt@example.org>")
	expect(452)
	_ = c.PrintfLine("RSET")
	expect(250)
	_ = c.PrintfLine("NOOP")
	expect(250)
}

// TestIdleTransactionsCutOff: a client cycling MAIL/RSET without ever
// sending a message is told 421 after a bounded number of commands.
func TestIdleTransactionsCutOff(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{})
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, _ = c.ReadResponse(220)
	_ = c.PrintfLine("EHLO x")
	_, _, _ = c.ReadResponse(250)
	for i := 0; ; i++ {
		_ = c.PrintfLine("MAIL FROM:<a@x.example>")
		code, _, _ := c.ReadResponse(250)
		if code == 421 {
			if i < 10 {
				t.Fatalf("cut off after %d transactions", i)
			}
			return
		}
		if i > 500 {
			t.Fatal("never cut off")
		}
		_ = c.PrintfLine("RSET")
		_, _, _ = c.ReadResponse(250)
	}
}

// TestSlowClientCutOff: a client that stops talking (or trickles slower than
// the deadline) is disconnected after the read deadline, and the listener
// keeps serving others meanwhile.
func TestSlowClientCutOff(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{Conns: ConnLimits{Timeout: time.Second}})
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	buf := make([]byte, 512)
	_, _ = slow.Read(buf) // greeting
	_, _ = slow.Write([]byte("E"))
	// Another client is served while the slow one dawdles.
	if err := sendPlain(t, addr, msg); err != nil {
		t.Fatalf("a second client was not served: %v", err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	for {
		if _, err := slow.Read(buf); err != nil {
			break
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the silent client was kept for %v", d)
	}
}

// TestLargeMessageStreamed: a message over 1 MiB goes to the store in
// chunks (its spool row holds no raw bytes) and comes back byte for byte.
func TestLargeMessageStreamed(t *testing.T) {
	s := openStore(t)
	addr := serve(t, tcpListener(t), s, SMTPConfig{MaxMessageBytes: 8 << 20})
	body := msg + strings.Repeat(strings.Repeat("z", 98)+"\r\n", 30000) // ~3 MiB
	if err := sendPlain(t, addr, body); err != nil {
		t.Fatal(err)
	}
	var rawLen, size int64
	if err := s.(interface{ SQL() *sql.DB }).SQL().QueryRow(`SELECT length(raw), size FROM spool WHERE id = 1`).Scan(&rawLen, &size); err != nil {
		t.Fatal(err)
	}
	if rawLen != 0 || size != int64(len(body)) {
		t.Fatalf("raw column %d bytes, size %d (want chunked, %d)", rawLen, size, len(body))
	}
	m, err := s.GetMessage(context.Background(), 1)
	if err != nil || string(m.Raw) != body {
		t.Fatalf("read back: %v, %d bytes", err, len(m.Raw))
	}
}
