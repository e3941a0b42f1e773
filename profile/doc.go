// Package profile renders the team's public documents from its
// configuration: the RFC 2350 profile and the RFC 9116 security.txt. It is
// pure: configuration and key facts in, text out; signing and serving are
// done by the caller (crypto, the HTTP server).
package profile
