// Package oauth gives the IMAP pollers and the relay client OAuth2 access
// tokens and the SASL mechanisms that carry them (XOAUTH2, which Microsoft
// 365 and Google offer, and OAUTHBEARER, RFC 7628).
//
// A Source gets tokens with golang.org/x/oauth2 by the client-credentials
// grant (Microsoft's app-only access) or the refresh-token grant (Google,
// delegated Microsoft access), renews them before they expire and once
// more after a server refuses one, and keeps a refresh token the endpoint
// rotates in the store, where every daemon sharing it finds it. A revoked
// or wrong credential is a PermanentError: the caller stops that mailbox
// (or the relay) and tries again later, never the daemon.
package oauth
