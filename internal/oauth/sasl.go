package oauth

import (
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// Mechanism names.
const (
	XOAuth2     = "XOAUTH2"
	OAuthBearer = sasl.OAuthBearer
)

// Pick chooses the mechanism from what the server advertises: XOAUTH2
// first (Microsoft offers nothing else), then OAUTHBEARER; "" when the
// server offers neither.
func Pick(advertised []string) string {
	up := make([]string, len(advertised))
	for i, m := range advertised {
		up[i] = strings.ToUpper(m)
	}
	for _, m := range []string{XOAuth2, OAuthBearer} {
		if slices.Contains(up, m) {
			return m
		}
	}
	return ""
}

// NewClient returns the SASL client of mechanism mech for user and token.
func NewClient(mech, user, token string) (sasl.Client, error) {
	switch mech {
	case XOAuth2:
		return &xoauth2Client{user: user, token: token}, nil
	case OAuthBearer:
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token}), nil
	}
	return nil, errors.New("oauth: no XOAUTH2 or OAUTHBEARER offered")
}

// xoauth2Client is the XOAUTH2 mechanism (Google's and Microsoft's
// documented format): one initial response, "user=U^Aauth=Bearer T^A^A".
// A refusal comes as a JSON challenge, answered with an empty response,
// after which the server says NO.
type xoauth2Client struct {
	user, token string
	failed      bool
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return XOAuth2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if c.failed {
		return nil, errors.New("oauth: XOAUTH2 refused")
	}
	c.failed = true
	return []byte{}, nil
}
