package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

// The outgoing side: what notify and the HTTP server send out under the
// team's name. Everything here is bytes in, bytes out.

// ErrNoTeamKey is returned when signing is asked for without a usable team
// secret key.
var ErrNoTeamKey = errors.New("crypto: no team secret key that can sign")

// signer returns the newest team key that can sign at now.
func (k *Keys) signer(now time.Time) (*openpgp.Entity, error) {
	if k == nil {
		return nil, ErrNoTeamKey
	}
	for _, e := range k.Team {
		if e.PrivateKey == nil {
			continue
		}
		if _, ok := e.SigningKey(now); ok {
			return e, nil
		}
	}
	return nil, ErrNoTeamKey
}

func outConfig(now time.Time) *packet.Config {
	return &packet.Config{Time: func() time.Time { return now }}
}

// Part is a MIME entity as it goes on the wire: header lines, a blank
// line, the body. Signing covers exactly these bytes.
type Part []byte

func boundary() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "=_madoguchi_" + hex.EncodeToString(b)
}

// SignMIME wraps part in an RFC 3156 multipart/signed entity signed with the
// team key. It returns the Content-Type header value and the body to put
// under it.
func (k *Keys) SignMIME(part Part, now time.Time) (contentType string, body []byte, err error) {
	e, err := k.signer(now)
	if err != nil {
		return "", nil, err
	}
	signed := rawmime.Canonical(part)
	var raw, sig bytes.Buffer
	if err := openpgp.DetachSignText(&raw, e, bytes.NewReader(signed), outConfig(now)); err != nil {
		return "", nil, fmt.Errorf("crypto: sign: %w", err)
	}
	if err := armorTo(&sig, openpgp.SignatureType, raw.Bytes()); err != nil {
		return "", nil, err
	}
	b := boundary()
	var out bytes.Buffer
	fmt.Fprintf(&out, "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--%s\r\n", b)
	out.Write(signed)
	fmt.Fprintf(&out, "\r\n--%s\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\nContent-Description: OpenPGP digital signature\r\nContent-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n", b)
	out.Write(rawmime.Canonical(sig.Bytes()))
	fmt.Fprintf(&out, "\r\n--%s--\r\n", b)
	return fmt.Sprintf("multipart/signed; micalg=pgp-%s; protocol=\"application/pgp-signature\"; boundary=\"%s\"", micalg(e), b), out.Bytes(), nil
}

func micalg(e *openpgp.Entity) string {
	// go-crypto signs with SHA-256 unless the key asks for better; the
	// value only has to name the hash actually used.
	if e.PrimaryKey != nil && e.PrimaryKey.Version == 6 {
		return "sha512"
	}
	return "sha256"
}

// SignEncryptMIME signs part with the team key and encrypts it to the
// recipients' keys (and to the team's own, so the sent copy stays
// readable), as an RFC 3156 multipart/encrypted entity.
func (k *Keys) SignEncryptMIME(part Part, to openpgp.EntityList, now time.Time) (contentType string, body []byte, err error) {
	e, err := k.signer(now)
	if err != nil {
		return "", nil, err
	}
	if len(to) == 0 {
		return "", nil, errors.New("crypto: no recipient key")
	}
	recipients := append(openpgp.EntityList{}, to...)
	recipients = append(recipients, e)
	var enc bytes.Buffer
	aw, err := armor.EncodeWithChecksumOption(&enc, "PGP MESSAGE", nil, true) // see withChecksum
	if err != nil {
		return "", nil, err
	}
	w, err := openpgp.Encrypt(aw, recipients, e, &openpgp.FileHints{IsBinary: true}, outConfig(now))
	if err != nil {
		return "", nil, fmt.Errorf("crypto: encrypt: %w", err)
	}
	if _, err := w.Write(rawmime.Canonical(part)); err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	if err := aw.Close(); err != nil {
		return "", nil, err
	}
	b := boundary()
	var out bytes.Buffer
	fmt.Fprintf(&out, "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--%s\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n--%s\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n", b, b)
	out.Write(rawmime.Canonical(enc.Bytes()))
	fmt.Fprintf(&out, "\r\n--%s--\r\n", b)
	return fmt.Sprintf("multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"%s\"", b), out.Bytes(), nil
}

// Clearsign returns text clearsigned with the team key (RFC 4880 section
// 7), as the RFC 2350 profile and security.txt are published.
func (k *Keys) Clearsign(text []byte, now time.Time) ([]byte, error) {
	e, err := k.signer(now)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, e.PrivateKey, outConfig(now))
	if err != nil {
		return nil, fmt.Errorf("crypto: clearsign: %w", err)
	}
	if _, err := w.Write(text); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return withChecksum(out.Bytes())
}

// withChecksum rewrites the signature block of a clearsigned text with a
// CRC24 line. go-crypto leaves it out (RFC 9580 says it SHOULD), but
// GnuPG 2.2, which Debian 12 ships, then reads the END line as base64
// whenever the data needs no "=" padding, prints "Good signature" and
// exits 2: every script that checks the exit status sees a failure.
func withChecksum(cs []byte) ([]byte, error) {
	const begin = "\n-----BEGIN PGP SIGNATURE-----"
	i := bytes.Index(cs, []byte(begin))
	if i < 0 {
		return nil, errors.New("crypto: clearsign: no signature block")
	}
	blk, err := armor.Decode(bytes.NewReader(cs[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("crypto: clearsign: %w", err)
	}
	sig, err := io.ReadAll(blk.Body)
	if err != nil {
		return nil, fmt.Errorf("crypto: clearsign: %w", err)
	}
	out := bytes.NewBuffer(append([]byte{}, cs[:i+1]...))
	if err := armorTo(out, blk.Type, sig); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// armorTo writes data armored as blockType with the CRC24 line (see
// withChecksum), ending in a newline.
func armorTo(out *bytes.Buffer, blockType string, data []byte) error {
	w, err := armor.EncodeWithChecksumOption(out, blockType, nil, true)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	out.WriteByte('\n')
	return nil
}

// ExportPublic returns the team's public keys, armored, newest first: what
// /pgp-key.asc serves and what correspondents import.
func (k *Keys) ExportPublic() ([]byte, error) {
	if k == nil || len(k.Team) == 0 {
		return nil, ErrNoTeamKey
	}
	var out bytes.Buffer
	w, err := armor.EncodeWithChecksumOption(&out, openpgp.PublicKeyType, nil, true)
	if err != nil {
		return nil, err
	}
	for _, e := range k.Team {
		if err := e.Serialize(w); err != nil {
			return nil, fmt.Errorf("crypto: export: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// ExportPublicBinary is ExportPublic without armour, as the Web Key
// Directory serves keys.
func (k *Keys) ExportPublicBinary() ([]byte, error) {
	if k == nil || len(k.Team) == 0 {
		return nil, ErrNoTeamKey
	}
	var out bytes.Buffer
	for _, e := range k.Team {
		if err := e.Serialize(&out); err != nil {
			return nil, fmt.Errorf("crypto: export: %w", err)
		}
	}
	return out.Bytes(), nil
}

// KeyFor returns the known correspondent keys carrying addr as a user ID
// and able to encrypt at now: who an acknowledgement can be encrypted to.
func (k *Keys) KeyFor(addr string, now time.Time) openpgp.EntityList {
	if k == nil {
		return nil
	}
	addr = strings.ToLower(strings.TrimSpace(addr))
	var out openpgp.EntityList
	for _, e := range k.Known {
		for _, id := range e.Identities {
			if id.UserId != nil && strings.ToLower(id.UserId.Email) == addr {
				if _, ok := e.EncryptionKey(now); ok {
					out = append(out, e)
				}
				break
			}
		}
	}
	return out
}

// TeamKey is the public face of one team key.
type TeamKey struct {
	Fingerprint string
	UserID      string
	Expires     time.Time // zero: never
}

// TeamKeys lists the team's keys, newest first.
func (k *Keys) TeamKeys() []TeamKey {
	if k == nil {
		return nil
	}
	var out []TeamKey
	for _, e := range k.Team {
		uid := ""
		if pi := e.PrimaryIdentity(); pi != nil {
			uid = pi.Name
		}
		tk := TeamKey{Fingerprint: Fingerprint(e), UserID: uid}
		if ss, _ := e.PrimarySelfSignature(); ss != nil && ss.KeyLifetimeSecs != nil && *ss.KeyLifetimeSecs != 0 {
			tk.Expires = e.PrimaryKey.CreationTime.Add(time.Duration(*ss.KeyLifetimeSecs) * time.Second)
		}
		out = append(out, tk)
	}
	return out
}

// KnownCount is the number of correspondents' keys.
func (k *Keys) KnownCount() int {
	if k == nil {
		return 0
	}
	return len(k.Known)
}
