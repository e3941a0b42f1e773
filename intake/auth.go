package intake

import (
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

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if !s.b.Credentials.Check(user, pass) {
			metricRefused.WithLabelValues(s.b.channel(), "auth").Inc()
			return errAuthFailed
		}
		s.user = user
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
