package profile

import (
	"crypto/sha1" // the Web Key Directory names keys by SHA-1; not a security use
	"strings"
)

const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32 encodes b in z-base-32 (RFC 6189 section 5.1.6), as WKD uses.
func zbase32(b []byte) string {
	var out strings.Builder
	var buf uint64
	bits := 0
	for _, c := range b {
		buf = buf<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			out.WriteByte(zbase32Alphabet[(buf>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out.WriteByte(zbase32Alphabet[(buf<<(5-bits))&31])
	}
	return out.String()
}

// WKDHash returns the Web Key Directory name of an address's key: the
// z-base-32 SHA-1 of its lower-cased local part, and the domain.
func WKDHash(address string) (hash, domain string) {
	local, domain, _ := strings.Cut(address, "@")
	sum := sha1.Sum([]byte(strings.ToLower(local)))
	return zbase32(sum[:]), strings.ToLower(domain)
}
