package intake

import (
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/madoguchi/madoguchi/internal/hashed"
)

// Credentials are the submission listener's users: a file of
// "USER HASH" lines, the hash bcrypt or argon2id (see internal/hashed).
type Credentials struct{ f *hashed.File }

// ParseCredentials reads a credentials file's content.
func ParseCredentials(b []byte) (*Credentials, error) {
	f, err := hashed.Parse(b, false)
	if err != nil {
		return nil, err
	}
	return &Credentials{f: f}, nil
}

// Check reports whether user's password is password.
func (c *Credentials) Check(user, password string) bool {
	return c != nil && c.f.Check(user, password)
}

// loginServer is the server side of the (obsolete but common) LOGIN
// mechanism: the username and the password in two base64 answers.
type loginServer struct {
	step     int
	username string
	check    func(user, pass string) error
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) > 0 { // initial response carries the username
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.username, string(response))
	}
}

var errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}

// AuthMechanisms implements smtp.AuthSession: PLAIN and LOGIN when the
// listener has credentials. go-smtp offers them only after STARTTLS.
func (s *session) AuthMechanisms() []string {
	if s.b.Credentials == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// authFailWindow is how long a client's failed AUTH attempts count
// against it.
const authFailWindow = 10 * time.Minute

// authFailures counts failed AUTH per client (IPv4 address or IPv6
// prefix) over authFailWindow, so that guessing across connections is as
// bounded as within one.
type authFailures struct {
	mu sync.Mutex
	m  map[string][]time.Time
}

// add records a failure of client and returns how many it has in the window.
func (a *authFailures) add(client string, now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string][]time.Time{}
	}
	if len(a.m) > 10000 { // forget clients quiet for a window
		for k, ts := range a.m {
			if now.Sub(ts[len(ts)-1]) > authFailWindow {
				delete(a.m, k)
			}
		}
	}
	ts := append(recent(a.m[client], now), now)
	a.m[client] = ts
	return len(ts)
}

// count is how many failures client has in the window.
func (a *authFailures) count(client string, now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(recent(a.m[client], now))
}

func recent(ts []time.Time, now time.Time) []time.Time {
	for len(ts) > 0 && now.Sub(ts[0]) > authFailWindow {
		ts = ts[1:]
	}
	return ts
}

func (s *session) maxAuthFailures() int {
	if n := s.b.Config.MaxAuthFailures; n > 0 {
		return n
	}
	return 3
}

// client is what per-client limits count by.
func (s *session) client() string {
	if c := connOf(s.conn); c != nil && c.key != "" {
		return c.key
	}
	h, _, _ := strings.Cut(s.peer, ":")
	return h
}

// Auth implements smtp.AuthSession. A few failures close the connection
// (421), and a client that keeps failing across connections is refused
// before any password is hashed: guessing costs the guesser, not us.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.b.fails.count(s.client(), time.Now()) >= 10*s.maxAuthFailures() {
		s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "auth-rate").Inc()
		return nil, s.errClosing("Too many failed authentications, try again later")
	}
	check := func(user, pass string) error {
		if !s.b.Credentials.Check(user, pass) {
			s.b.Metrics.Refused.WithLabelValues(s.b.channel(), "auth").Inc()
			s.b.fails.add(s.client(), time.Now())
			if s.authFail++; s.authFail >= s.maxAuthFailures() {
				return s.errClosing("Too many failed authentications, closing")
			}
			return errAuthFailed
		}
		s.user = user
		s.progress()
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return errAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}
