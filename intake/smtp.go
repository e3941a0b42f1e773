package intake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/madoguchi/madoguchi/store"
)

// SMTPConfig configures the listener.
type SMTPConfig struct {
	Recipients      []string
	MaxMessageBytes int64
	Hostname        string
	LMTP            bool
	// TLS, when set, offers STARTTLS.
	TLS *tls.Config
	// Limits per connection (zero: the defaults below).
	MaxRecipients      int
	MaxMessagesPerConn int
	// MaxAuthFailures on one connection before 421 and close (default
	// 3); a client past ten times that in authFailWindow gets 421 at
	// once, without a password being hashed.
	MaxAuthFailures int
	// Conns bound connections, idleness and slow uploads (ConnLimits;
	// its Timeout is the per-read timeout).
	Conns ConnLimits
	// SpillDir holds messages over 1 MiB while they arrive (unlinked at
	// once; "": the system's temporary directory). Under the data
	// directory, not /tmp, which is often a small tmpfs.
	SpillDir string
}

// Spooler is where accepted messages go: store.Store (one commit per
// message) or *store.Committer (group commit). Nil error means durable.
type Spooler interface {
	Spool(ctx context.Context, m *store.Message) (int64, error)
}

// Backend is the go-smtp backend feeding the spool.
type Backend struct {
	Store  Spooler
	Config SMTPConfig
	Log    *slog.Logger
	// Credentials, when set, enable AUTH PLAIN/LOGIN (offered only after
	// STARTTLS) and RequireAuth refuses MAIL before it: the staff
	// submission listener.
	Credentials *Credentials
	RequireAuth bool
	// Spooled is signalled (non-blocking) after each commit, to wake workers.
	Spooled chan<- struct{}
	// Metrics count what the listener does (NewServer makes a set of its
	// own when nil).
	Metrics *Metrics
	allowed map[string]bool
	fails   authFailures
}

// Server is a go-smtp server whose connections keep the listener's
// ConnLimits and close after every 421 reply (see Serve).
type Server struct {
	*smtp.Server
	limits  ConnLimits
	refused *prometheus.CounterVec
}

// Serve accepts connections on l under the server's ConnLimits. A 421
// reply closes the connection once it is written (RFC 5321 4.2.5): a
// client that answers a 421 with RSET and MAIL again, as Go's net/smtp
// does, would otherwise loop.
func (s *Server) Serve(l net.Listener) error {
	return s.Server.Serve(newConnListener(l, s.limits, s.refused))
}

// errClosing is a 421 reply after which the connection closes: the
// connection closes after its next write, which is this reply (one TLS
// record after STARTTLS, which wraps the connection, so the reply itself
// cannot be looked for in the bytes).
func (s *session) errClosing(msg string) error {
	if c := connOf(s.conn); c != nil {
		c.mu.Lock()
		c.closeNext = true
		c.mu.Unlock()
	}
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: msg}
}

// NewServer returns a go-smtp server for the backend.
func NewServer(b *Backend) *Server {
	if b.Metrics == nil {
		b.Metrics = NewMetrics(nil)
	}
	b.allowed = map[string]bool{}
	for _, r := range b.Config.Recipients {
		b.allowed[strings.ToLower(r)] = true
	}
	s := smtp.NewServer(b)
	s.Domain = b.Config.Hostname
	if s.Domain == "" {
		s.Domain, _ = os.Hostname() // what an MTA greets with
	}
	if s.Domain == "" {
		s.Domain = "localhost"
	}
	s.LMTP = b.Config.LMTP
	s.MaxMessageBytes = b.Config.MaxMessageBytes
	s.MaxRecipients = b.Config.MaxRecipients
	if s.MaxRecipients <= 0 {
		s.MaxRecipients = 100
	}
	lim := b.Config.Conns.withDefaults()
	// Read deadlines are the connection's (smtpConn): for idleness, for
	// progress and for the rate of DATA, not per command.
	s.ReadTimeout = 0
	s.WriteTimeout = lim.Timeout
	s.EnableSMTPUTF8 = true
	// RFC 5322 says 998 octets, but real reporters' mailers send longer
	// lines (HTML on one line, pasted logs) and Postfix takes them: refusing
	// would lose a report. The size limit still bounds the message.
	s.MaxLineLength = 1 << 20
	s.TLSConfig = b.Config.TLS
	s.AllowInsecureAuth = false
	return &Server{Server: s, limits: lim, refused: b.Metrics.Refused}
}

func (b *Backend) channel() string {
	switch {
	case b.Config.LMTP:
		return store.ChannelLMTP
	case b.RequireAuth:
		return store.ChannelSubmission // MAIL is refused before AUTH
	}
	return store.ChannelSMTP
}

// NewSession implements smtp.Backend.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	peer := ""
	if c.Conn() != nil {
		peer = c.Conn().RemoteAddr().String()
	}
	return &session{b: b, conn: c, peer: peer, helo: c.Hostname()}, nil
}

type session struct {
	b        *Backend
	conn     *smtp.Conn
	peer     string
	helo     string
	from     string
	rcpt     []string
	messages int    // accepted on this connection
	user     string // authenticated user, "" before AUTH
	authFail int    // failed AUTH on this connection
	// idle counts MAIL and RSET since the last accepted message: a client
	// cycling transactions without ever sending one is cut off.
	idle int
}

// maxIdleTransactions bounds MAIL/RSET cycles without a message.
const maxIdleTransactions = 50

func (s *session) maxMessages() int {
	if s.b.Config.MaxMessagesPerConn > 0 {
		return s.b.Config.MaxMessagesPerConn
	}
	return 100
}

func (s *session) Reset()        { s.from, s.rcpt = "", nil; s.idle++ }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.RequireAuth && s.user == "" {
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "auth-required").Inc()
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required (STARTTLS first)"}
	}
	if s.idle > 2*maxIdleTransactions { // Reset also runs once per MAIL
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "idle-transactions").Inc()
		return s.errClosing("Too many commands without a message, reconnect")
	}
	if s.messages >= s.maxMessages() {
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "messages-per-connection").Inc()
		return s.errClosing("Too many messages on one connection, reconnect")
	}
	s.from = from
	s.rcpt = nil
	s.progress()
	return nil
}

// progress tells the connection of a transaction step.
func (s *session) progress() {
	if c := connOf(s.conn); c != nil {
		c.progress()
	}
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.b.allowed[strings.ToLower(to)] {
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "recipient").Inc()
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}
	}
	s.rcpt = append(s.rcpt, strings.ToLower(to))
	s.progress()
	return nil
}

func ref() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *session) Data(r io.Reader) error {
	_, err := s.receive(r)
	return err
}

// LMTPData implements smtp.LMTPSession: the message is spooled once for
// all its recipients, and each recipient gets the status of that one
// commit (all 250 or all 451), so the MTA in front retries exactly what
// was not made durable.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	_, err := s.receive(r)
	for _, rc := range s.rcpt {
		status.SetStatus(rc, err)
	}
	return nil
}

// receive reads the message (go-smtp stops the read with 552 5.3.4 at the
// size limit, so an oversized message is never held whole) and spools it;
// the reply is 250 only once the spool commit returned.
func (s *session) receive(r io.Reader) (int64, error) {
	if len(s.rcpt) == 0 {
		return 0, &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "RCPT first"}
	}
	if c := connOf(s.conn); c != nil {
		c.data(true)
		defer c.data(false)
	}
	buf := &spill{limit: inMemoryLimit, dir: s.b.Config.SpillDir}
	defer buf.Close()
	if _, err := io.Copy(buf, r); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "size").Inc()
			return 0, se
		}
		if errors.Is(err, smtp.ErrTooLongLine) {
			s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "line-length").Inc()
			return 0, &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line longer than 1 MiB"}
		}
		// Too slow or gone: go-smtp would read the rest of DATA before
		// it answers, holding the slot as long as the client trickles;
		// end the connection instead, with a 421.
		if c := connOf(s.conn); c != nil {
			c.mu.Lock()
			c.evicted = true
			c.mu.Unlock()
		}
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "data-timeout").Inc()
		return 0, s.errClosing("Message not received in time (too slow or interrupted), closing; try again later")
	}
	start := time.Now()
	m := &store.Message{Channel: s.b.channel(), MailFrom: s.from, RcptTo: s.rcpt, Peer: s.peerString()}
	if buf.file != nil {
		m.Source = buf.file // over 1 MiB: streamed to the store in chunks
	} else {
		m.Raw = buf.mem.Bytes()
	}
	id, err := s.b.Store.Spool(context.Background(), m)
	if err != nil {
		rid := ref()
		s.b.Log.Error("spool failed", "ref", rid, "peer", s.peer, "err", err)
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "spool-error").Inc()
		return 0, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later (ref " + rid + ")"}
	}
	s.messages++
	s.idle = 0
	s.b.Metrics.SpoolSeconds.WithLabelValues(s.b.channel()).Observe(time.Since(start).Seconds())
	s.b.Metrics.Received.WithLabelValues(s.b.channel()).Inc()
	s.b.Metrics.Bytes.WithLabelValues(s.b.channel()).Add(float64(buf.n))
	s.b.Log.Info("spooled", "spool", id, "channel", s.b.channel(), "peer", s.peer, "from", s.from, "bytes", buf.n)
	if s.b.Spooled != nil {
		select {
		case s.b.Spooled <- struct{}{}:
		default:
		}
	}
	return id, nil
}

func (s *session) peerString() string {
	p := s.peer + " helo=" + s.helo
	if s.user != "" {
		p += " auth=" + s.user
	}
	return p
}

// inMemoryLimit is the largest message kept in memory while it is spooled;
// a larger one goes to a temporary file and from there to the store in
// chunks, so memory per connection stays bounded whatever the size limit.
const inMemoryLimit = 1 << 20

// spill is a buffer that moves to a temporary file past its limit.
type spill struct {
	limit int
	dir   string
	mem   bytes.Buffer
	file  *os.File
	n     int64
}

func (s *spill) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.file == nil && s.mem.Len()+len(p) <= s.limit {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "madoguchi-data-*")
		if err != nil {
			return 0, err
		}
		// Unlinked at once: the open descriptor is all that is needed, and
		// nothing is left behind if the process dies.
		_ = os.Remove(f.Name())
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			_ = f.Close()
			return 0, err
		}
		s.mem = bytes.Buffer{}
		s.file = f
	}
	return s.file.Write(p)
}

// Close releases the temporary file, if any.
func (s *spill) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}
