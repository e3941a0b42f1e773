package app

import (
	"crypto/tls"
	"fmt"
	"os"
	"syscall"

	"github.com/madoguchi/madoguchi/configs"
	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/notify"
	"github.com/madoguchi/madoguchi/web"
)

// secrets are what serve reads from files named by the configuration,
// besides the store DSN and the keys (keysAndStore).
type secrets struct {
	tokens        *web.Tokens
	tls           *tls.Config // nil: no STARTTLS
	submission    *intake.Credentials
	imapPasswords []string        // by intake.imap index
	imapOAuth2    []*oauth.Config // by intake.imap index, nil for passwords
	relayOAuth2   *oauth.Config
	relayPassword string
	relayTLS      *tls.Config
	webhook       []byte
	oidcSecret    string
}

// loadSecrets reads every secret and certificate serve needs; an error is
// a usage error (exit 2) naming the key.
func (e *Env) loadSecrets() (*secrets, error) {
	var sec secrets
	var err error
	if sec.tokens, err = e.StaffTokens(); err != nil {
		return nil, err
	}
	if o := e.Cfg.HTTP.OIDC; o != nil && o.ClientSecretFile != "" {
		if sec.oidcSecret, err = configs.ReadSecret(o.ClientSecretFile); err != nil {
			return nil, UsageErr("http.oidc.client_secret_file: %v", UnwrapPathErr(err))
		}
	}
	if c := e.Cfg.Intake.SMTP; c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, UsageErr("intake.smtp.tls_cert_file: %v", err)
		}
		sec.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if sub := e.Cfg.Intake.Submission; sub.Listen != "" {
		b, err := os.ReadFile(sub.CredentialsFile)
		if err != nil {
			return nil, UsageErr("intake.submission.credentials_file: %v", UnwrapPathErr(err))
		}
		if sec.submission, err = intake.ParseCredentials(b); err != nil {
			return nil, UsageErr("intake.submission.credentials_file: %s: %v", sub.CredentialsFile, err)
		}
	}
	for i, m := range e.Cfg.Intake.IMAP {
		var pw string
		var oc *oauth.Config
		if m.Auth == "oauth2" {
			if oc, err = e.OAuthConfig(fmt.Sprintf("intake.imap[%d].oauth2", i), IMAPAccount(m), m.OAuth2, oauth.ForIMAP); err != nil {
				return nil, err
			}
		} else if pw, err = configs.ReadSecret(m.PasswordFile); err != nil {
			return nil, UsageErr("intake.imap[%d].password_file: %v", i, UnwrapPathErr(err))
		}
		sec.imapPasswords = append(sec.imapPasswords, pw)
		sec.imapOAuth2 = append(sec.imapOAuth2, oc)
	}
	if n := e.Cfg.Notify; n.Relay != "" && n.RelayAuth == "oauth2" {
		if sec.relayOAuth2, err = e.OAuthConfig("notify.relay_oauth2", RelayAccount(n), n.RelayOAuth2, oauth.ForSMTP); err != nil {
			return nil, err
		}
	}
	if n := e.Cfg.Notify; n.Relay != "" && n.RelayPasswordFile != "" {
		if sec.relayPassword, err = configs.ReadSecret(n.RelayPasswordFile); err != nil {
			return nil, UsageErr("notify.relay_password_file: %v", UnwrapPathErr(err))
		}
	}
	if n := e.Cfg.Notify; n.Relay != "" {
		var ca []byte
		if n.RelayCAFile != "" {
			if ca, err = os.ReadFile(n.RelayCAFile); err != nil {
				return nil, UsageErr("notify.relay_ca_file: %v", UnwrapPathErr(err))
			}
		}
		if sec.relayTLS, err = notify.RelayTLSConfig(n.Relay, ca); err != nil {
			return nil, UsageErr("notify.relay_ca_file: %s: %v", n.RelayCAFile, err)
		}
	}
	if f := e.Cfg.Notify.Alert.WebhookSecretFile; f != "" {
		w, err := configs.ReadSecret(f)
		if err != nil {
			return nil, UsageErr("notify.alert.webhook_secret_file: %v", UnwrapPathErr(err))
		}
		sec.webhook = []byte(w)
	}
	return &sec, nil
}

// fdReserve is what the store (its pools, SQLite's files), the log, the
// outbox and the pollers may need of file descriptors besides the
// listeners' connections.
const fdReserve = 128

// httpConnLimit is http.max_connections, lowered (with a warning) so that
// the HTTP connections and every SMTP slot together leave fdReserve
// descriptors of the process's limit: idle HTTP keep-alives once took
// every descriptor, and SMTP's accept failed with "too many open files".
func (e *Env) httpConnLimit() int {
	want := e.Cfg.HTTP.MaxConnections
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return want
	}
	smtp := e.Cfg.Intake.SMTP.MaxConnections
	if e.Cfg.Intake.Submission.Listen != "" {
		smtp *= 2 // the submission listener has the same limits
	}
	room := int(rl.Cur) - smtp - fdReserve
	if want <= room {
		return want
	}
	got := max(room, 16)
	e.Log.Warn("http.max_connections lowered to fit the file descriptor limit", "configured", want, "now", got,
		"nofile", rl.Cur, "smtp_slots", smtp, "reserve", fdReserve)
	return got
}

// imapAccount names a mailbox's OAuth2 account: the store's key for its
// refresh token and the metric's label.
func IMAPAccount(m configs.IMAP) string { return "imap:" + m.Username + "@" + m.Address }

// relayAccount names the relay's.
func RelayAccount(n configs.Notify) string { return "relay:" + n.RelayUsername + "@" + n.Relay }

// oauthConfig reads an account's OAuth2 secrets (key names them in
// errors) and fills in its provider's endpoints and scopes.
func (e *Env) OAuthConfig(key, account string, o *configs.OAuth2, purpose string) (*oauth.Config, error) {
	cc := o.ClientCredentials()
	tokenURL, deviceURL, scopes, err := oauth.Preset(o.Provider, o.Tenant, purpose, cc)
	if err != nil {
		return nil, UsageErr("%s: %v", key, err)
	}
	c := &oauth.Config{Account: account, TokenURL: tokenURL, DeviceAuthURL: deviceURL, ClientID: o.ClientID, Scopes: scopes, RefreshGrant: !cc}
	if o.TokenURL != "" {
		c.TokenURL = o.TokenURL
	}
	if o.DeviceAuthURL != "" {
		c.DeviceAuthURL = o.DeviceAuthURL
	}
	if len(o.Scopes) > 0 {
		c.Scopes = o.Scopes
	}
	if o.ClientSecretFile != "" {
		if c.ClientSecret, err = configs.ReadSecret(o.ClientSecretFile); err != nil {
			return nil, UsageErr("%s.client_secret_file: %v", key, UnwrapPathErr(err))
		}
	}
	if o.RefreshTokenFile != "" {
		if c.Seed, err = configs.ReadSecret(o.RefreshTokenFile); err != nil {
			return nil, UsageErr("%s.refresh_token_file: %v", key, UnwrapPathErr(err))
		}
	}
	return c, nil
}
