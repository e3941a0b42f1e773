package crypto

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Describe lists the keys one per line: role, fingerprint, user ID, state.
func Describe(k *Keys, now time.Time) []string {
	var out []string
	line := func(role string, e *openpgp.Entity) {
		uid := ""
		if pi := e.PrimaryIdentity(); pi != nil {
			uid = pi.Name
		}
		state := "valid"
		if e.Revoked(now) {
			state = "revoked"
		} else if ss, _ := e.PrimarySelfSignature(); ss != nil && e.PrimaryKey.KeyExpired(ss, now) {
			state = "expired"
		}
		out = append(out, fmt.Sprintf("%-6s %s %s [%s]", role, Fingerprint(e), uid, state))
	}
	for _, e := range k.Team {
		line("team", e)
	}
	for _, e := range k.Known {
		line("known", e)
	}
	return out
}

// MergeKeyring adds the public keys in add to the armored keyring old and
// returns the new armored keyring and the fingerprints added.
func MergeKeyring(old, add []byte) ([]byte, []string, error) {
	var ring openpgp.EntityList
	if len(bytes.TrimSpace(old)) > 0 {
		r, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(old))
		if err != nil {
			return nil, nil, fmt.Errorf("existing keyring: %w", err)
		}
		ring = r
	}
	in, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(add))
	if err != nil {
		return nil, nil, err
	}
	have := map[string]int{}
	for i, e := range ring {
		have[Fingerprint(e)] = i
	}
	var added []string
	for _, e := range in {
		fp := Fingerprint(e)
		if i, ok := have[fp]; ok {
			ring[i] = e // newer copy (revocations, new subkeys) wins
		} else {
			ring = append(ring, e)
		}
		uid := ""
		if pi := e.PrimaryIdentity(); pi != nil {
			uid = pi.Name
		}
		added = append(added, strings.TrimSpace(fp+" "+uid))
	}
	var buf bytes.Buffer
	w, err := armor.EncodeWithChecksumOption(&buf, openpgp.PublicKeyType, nil, true) // GnuPG 2.2 needs the CRC line: see withChecksum
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ring {
		if err := e.Serialize(w); err != nil {
			return nil, nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), added, nil
}
