package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/madoguchi/madoguchi/internal/app"
	"github.com/madoguchi/madoguchi/internal/oauth"
)

// cmdOAuth2: `oauth2 login ACCOUNT` runs the device authorization grant
// (RFC 8628) for a mailbox (ACCOUNT: its username, or imap[N]) or the
// relay ("relay"): it prints where to sign in and the code, waits, and
// keeps the refresh token in the store, where serve takes it from (an
// operator never copies a token out of a browser).
func (e *env) cmdOAuth2(ctx context.Context, args []string) error {
	if len(args) != 2 || args[0] != "login" {
		return usageErr("usage: madoguchi oauth2 login ACCOUNT (a mailbox's username, imap[N], or relay)")
	}
	var conf *oauth.Config
	var err error
	switch name := args[1]; {
	case name == "relay":
		n := e.Cfg.Notify
		if n.RelayAuth != "oauth2" {
			return usageErr("oauth2 login relay: notify.relay_auth is not oauth2")
		}
		conf, err = e.OAuthConfig("notify.relay_oauth2", app.RelayAccount(n), n.RelayOAuth2, oauth.ForSMTP)
	default:
		for i, m := range e.Cfg.Intake.IMAP {
			if m.Username == name || fmt.Sprintf("imap[%d]", i) == name {
				if m.Auth != "oauth2" {
					return usageErr("oauth2 login %s: intake.imap[%d].auth is not oauth2", name, i)
				}
				conf, err = e.OAuthConfig(fmt.Sprintf("intake.imap[%d].oauth2", i), app.IMAPAccount(m), m.OAuth2, oauth.ForIMAP)
				break
			}
		}
		if conf == nil && err == nil {
			return usageErr("oauth2 login: no mailbox %q with auth: oauth2 (give its username, imap[N], or relay)", name)
		}
	}
	if err != nil {
		return err
	}
	if !conf.RefreshGrant {
		return usageErr("oauth2 login %s: the account uses the client-credentials grant (client_secret_file): nobody signs in", args[1])
	}
	if conf.DeviceAuthURL == "" {
		return usageErr("oauth2 login %s: no device_auth_url (and no provider to take it from)", args[1])
	}
	s, err := e.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	err = oauth.Login(ctx, *conf, s, nil, func(uri, code string) {
		fmt.Fprintf(e.stdout, "To sign %s in, open %s and enter the code %s\nWaiting for the sign-in...\n", strings.TrimPrefix(conf.Account, "imap:"), uri, code)
	})
	if err != nil {
		return runErr("%v", err)
	}
	fmt.Fprintf(e.stdout, "signed in: the refresh token of %s is kept in the store\n", conf.Account)
	return nil
}
