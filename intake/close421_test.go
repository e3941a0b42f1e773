package intake

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// TestReply421ClosesTheConnection: after "421 Too many messages on one
// connection" the server closes the channel (RFC 5321 4.2.5), in clear
// and after STARTTLS: Go's net/smtp client, which answers an error with
// RSET, gets an error at once instead of looping on 250 and 421.
func TestReply421ClosesTheConnection(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		s := openStore(t)
		cfg := SMTPConfig{MaxMessagesPerConn: 1}
		if withTLS {
			cfg.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		}
		addr := serve(t, tcpListener(t), s, cfg)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.NewClient(conn, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if withTLS {
			if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Fatal(err)
			}
		}
		send := func() error {
			if err := c.Mail("r@reporter.example"); err != nil {
				return err
			}
			if err := c.Rcpt("csirt@example.org"); err != nil {
				return err
			}
			w, err := c.Data()
			if err != nil {
				return err
			}
			_, _ = io.WriteString(w, msg)
			return w.Close()
		}
		if err := send(); err != nil {
			t.Fatalf("tls=%v: first message: %v", withTLS, err)
		}
		err = send()
		if err == nil || !strings.HasPrefix(err.Error(), "421") {
			t.Fatalf("tls=%v: second message: %v, want 421", withTLS, err)
		}
		// The server has closed: the next command fails, with no 250.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		err = c.Reset()
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("tls=%v: RSET after 421: %v, want the connection closed", withTLS, err)
		}
		_ = c.Close()
		if n := queued(t, s); n != 1 {
			t.Fatalf("%d spooled", n)
		}
	}
}
