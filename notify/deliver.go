package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/madoguchi/madoguchi/internal/oauth"
)

// Deliverer hands a rendered message on. An error wrapped in
// PermanentError will never succeed (a 5xx from the relay); any other error
// is retried with back-off.
type Deliverer interface {
	Deliver(ctx context.Context, from string, to []string, msg []byte, id string) error
}

// PermanentError marks a delivery that must not be retried.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// FileDelivery writes each message as an .eml file (fsynced, then renamed
// into place) for an operator or another tool to pick up.
type FileDelivery struct{ Dir string }

// RelayTLSConfig is the TLS configuration for the relay at addr: the
// system's roots, and the certificates in caPEM besides (a site relay
// with an internal CA; without them every acknowledgement would end a
// dead letter on a certificate error).
func RelayTLSConfig(addr string, caPEM []byte) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	conf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if len(caPEM) == 0 {
		return conf, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate in it")
	}
	conf.RootCAs = pool
	return conf, nil
}

// Deliver implements Deliverer.
func (f FileDelivery) Deliver(_ context.Context, _ string, _ []string, msg []byte, id string) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(f.Dir, fileName(id)), msg)
}

// Relay delivers through an SMTP relay with go-smtp's client: STARTTLS when
// the relay offers it (required when TLS is "starttls"), implicit TLS with
// "implicit", AUTH PLAIN when a username is set (only over TLS).
type Relay struct {
	Addr      string // host:port
	TLS       string // "" (STARTTLS if offered) | starttls | implicit | none
	TLSConfig *tls.Config
	Username  string
	Password  string
	Hostname  string // our EHLO name
	Timeout   time.Duration
	// OAuth2, when set, authenticates Username with a bearer token
	// (XOAUTH2 or OAUTHBEARER, as the relay offers) instead of Password.
	OAuth2 *oauth.Source
}

// Deliver implements Deliverer.
func (r *Relay) Deliver(ctx context.Context, from string, to []string, msg []byte, _ string) error {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	tlsConf := r.TLSConfig
	if tlsConf == nil {
		host, _, _ := net.SplitHostPort(r.Addr)
		tlsConf = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", r.Addr)
		if err != nil {
			return nil, fmt.Errorf("relay %s: %w", r.Addr, err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * timeout))
		return conn, nil
	}
	conn, err := dial()
	if err != nil {
		return err
	}
	var c *smtp.Client
	switch r.TLS {
	case "implicit":
		c = smtp.NewClient(tls.Client(conn, tlsConf))
	case "none":
		c = smtp.NewClient(conn)
	default: // "" (opportunistic) or "starttls" (required)
		c, err = smtp.NewClientStartTLS(conn, tlsConf)
		if err != nil {
			_ = conn.Close()
			if r.TLS == "starttls" || !strings.Contains(err.Error(), "STARTTLS") {
				return classify(err)
			}
			// The relay offers no STARTTLS: go on in the clear, as
			// opportunistic TLS does.
			if conn, err = dial(); err != nil {
				return err
			}
			c = smtp.NewClient(conn)
		}
	}
	defer c.Close()
	if r.Hostname != "" && (r.TLS == "implicit" || r.TLS == "none") {
		// (go-smtp's STARTTLS client has greeted already, as "localhost".)
		if err := c.Hello(r.Hostname); err != nil {
			return classify(err)
		}
	}
	if r.Username != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && r.TLS != "none" {
			return &PermanentError{fmt.Errorf("relay %s: refusing to send credentials without TLS", r.Addr)}
		}
		if err := r.auth(ctx, c); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(string(msg))); err != nil {
		return classify(err)
	}
	return c.Quit()
}

// auth authenticates to the relay: AUTH PLAIN with the password, or a
// bearer token, a refused one dropped and a fresh one tried once. A token
// the endpoint refuses is an oauth.PermanentError: the writer postpones
// its rows instead of failing them.
func (r *Relay) auth(ctx context.Context, c *smtp.Client) error {
	if r.OAuth2 == nil {
		return classify(c.Auth(sasl.NewPlainClient("", r.Username, r.Password)))
	}
	_, params := c.Extension("AUTH")
	mech := oauth.Pick(strings.Fields(params))
	var err error
	for try := 0; try < 2; try++ {
		tok, terr := r.OAuth2.Token(ctx)
		if terr != nil {
			return terr
		}
		sc, serr := oauth.NewClient(mech, r.Username, tok)
		if serr != nil {
			return &PermanentError{fmt.Errorf("relay %s: %w (it offers AUTH %s)", r.Addr, serr, params)}
		}
		if err = c.Auth(sc); err == nil {
			return nil
		}
		r.OAuth2.Invalidate()
	}
	return fmt.Errorf("relay %s: %s refused: %w", r.Addr, mech, err) // temporary: the token may be renewed
}

// classify turns a 5xx reply into a PermanentError; 4xx replies and
// network errors stay temporary.
func classify(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		return &PermanentError{err}
	}
	return err
}

func fileName(mid string) string {
	s := strings.Trim(mid, "<>")
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 32 {
			return '_'
		}
		return r
	}, s)
	return s + ".eml"
}

// writeFileSync writes data to path durably, readable by the owner and
// its group only (an acknowledgement names a reporter and a ticket).
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
