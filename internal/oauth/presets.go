package oauth

import (
	"fmt"
	"strings"
)

// Purposes a preset's scopes are for.
const (
	ForIMAP = "imap"
	ForSMTP = "smtp"
)

// Preset returns the token and device endpoints and the scopes of a
// provider for purpose (ForIMAP or ForSMTP), with the client-credentials
// grant (app-only) or a user's sign-in (the refresh-token grant):
// Microsoft 365 ("microsoft", with the tenant) and Google ("google"). An
// empty provider returns nothing: the configuration names the endpoints.
func Preset(provider, tenant, purpose string, clientCredentials bool) (tokenURL, deviceURL string, scopes []string, err error) {
	switch strings.ToLower(provider) {
	case "":
		return "", "", nil, nil
	case "microsoft":
		if tenant == "" {
			return "", "", nil, fmt.Errorf("provider microsoft needs a tenant (its ID or domain, or \"organizations\")")
		}
		base := "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/"
		switch {
		case clientCredentials:
			// App-only access: the application's permissions, granted
			// by an administrator (IMAP.AccessAsApp, SMTP.SendAsApp).
			scopes = []string{"https://outlook.office365.com/.default"}
		case purpose == ForSMTP:
			scopes = []string{"https://outlook.office365.com/SMTP.Send", "offline_access"}
		default:
			scopes = []string{"https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"}
		}
		return base + "token", base + "devicecode", scopes, nil
	case "google":
		return "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/device/code", []string{"https://mail.google.com/"}, nil
	}
	return "", "", nil, fmt.Errorf("unknown provider %q (microsoft, google, or none with token_url)", provider)
}
