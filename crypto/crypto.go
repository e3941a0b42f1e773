package crypto

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/madoguchi/madoguchi/internal/rawmime"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
)

// Limits bound Unwrap. Zero means default.
type Limits struct {
	MaxDecompressed int64 // default 64 MiB
	MaxDepth        int   // nested encryption/signature layers; default 4
}

// Keys holds the team's secret keys and the known correspondents' keys.
type Keys struct {
	Team   openpgp.EntityList // secret keys (decrypted), newest first
	Known  openpgp.EntityList // correspondents' public keys
	Labels map[string]string  // fingerprint (upper hex) → label
	verify openpgp.EntityList // Known + Team public
	// SMIME is the team's S/MIME certificate, key and trust anchors (nil:
	// no S/MIME).
	SMIME *SMIME
}

// LoadKeys parses armored team secret keys (decrypting them with the
// passphrase when protected) and the armored keyring of correspondents.
func LoadKeys(teamArmored [][]byte, passphrase []byte, knownArmored []byte) (*Keys, error) {
	k := &Keys{Labels: map[string]string{}}
	for i, a := range teamArmored {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(a))
		if err != nil {
			return nil, fmt.Errorf("team key %d: %w", i+1, err)
		}
		for _, e := range el {
			if e.PrivateKey == nil {
				return nil, fmt.Errorf("team key %d (%s): not a secret key", i+1, Fingerprint(e))
			}
			if e.PrivateKey.Encrypted {
				if len(passphrase) == 0 {
					return nil, fmt.Errorf("team key %s is protected and no passphrase was given", Fingerprint(e))
				}
				if err := e.DecryptPrivateKeys(passphrase); err != nil {
					return nil, fmt.Errorf("team key %s: wrong passphrase", Fingerprint(e))
				}
			}
			k.Team = append(k.Team, e)
		}
	}
	if len(knownArmored) > 0 {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(knownArmored))
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		k.Known = el
	}
	k.verify = append(append(openpgp.EntityList{}, k.Known...), k.Team...)
	return k, nil
}

// Fingerprint is the upper-case hex fingerprint of an entity.
func Fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// SHA256Hex hashes raw bytes.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Result is what Unwrap found.
type Result struct {
	Cleartext         []byte // the MIME message to parse
	Decryption        vocab.DecStatus
	DecryptionDetail  string
	Signature         vocab.SigStatus
	SignatureDetail   string
	SignerFingerprint string
	Signer            string // primary user ID
	ProtectedSubject  string
	// SignedPart says what a signature covers when it is not the whole
	// message ("" when it is): text around a clearsigned block, or one
	// part of several. Such a signature proves nothing about the rest, so
	// it grants no trust (a pasted public clearsigned document would
	// otherwise vouch for whatever surrounds it).
	SignedPart string
	// DecryptionMethod and SignatureMethod are "pgp" or "smime" for a
	// verdict other than none ("" otherwise).
	DecryptionMethod, SignatureMethod string
	// S/MIME signers: the certificate's subject, issuer, first e-mail
	// address and SHA-256 (hex); SignerCert is the certificate of a good
	// signature (to harvest for answering encrypted).
	SignerSubject, SignerIssuer, SignerEmail, SignerCertSHA256 string
	SignerCert                                                 *x509.Certificate

	signerAddrs          []string
	decMethod, sigMethod string
}

// SignerHasAddress reports whether the signing key carries addr in a user ID.
func (r *Result) SignerHasAddress(addr string) bool {
	for _, a := range r.signerAddrs {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

// Unwrap decrypts and verifies raw. With nil keys, or a message without
// OpenPGP, Cleartext is raw and both verdicts are none.
func Unwrap(raw []byte, keys *Keys, lim Limits, now time.Time) (res Result) {
	if lim.MaxDecompressed <= 0 {
		lim.MaxDecompressed = 64 << 20
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = 4
	}
	res = Result{Cleartext: raw, Decryption: vocab.DecNone, Signature: vocab.SigNone}
	defer func() {
		if r := recover(); r != nil { // a library bug must not take the daemon down
			res = Result{Cleartext: stripBody(raw, "[madoguchi: OpenPGP processing failed]"), Decryption: vocab.DecCannotDecrypt,
				DecryptionDetail: fmt.Sprintf("internal error: %v", r), Signature: vocab.SigNone}
		}
	}()
	if keys == nil {
		keys = &Keys{}
	}
	u := &unwrapper{keys: keys, lim: lim, now: now, budget: capFor(lim, len(raw))}
	u.unwrap(&res, raw, 0, "")
	if res.Decryption != vocab.DecNone {
		res.DecryptionMethod = cmp.Or(res.decMethod, "pgp")
	}
	if res.Signature != vocab.SigNone {
		res.SignatureMethod = cmp.Or(res.sigMethod, "pgp")
	}
	if len(res.Cleartext) == 0 && len(raw) > 0 {
		// A PGP/MIME shell around nothing (an empty signed part, say)
		// leaves no entity: keep the visible headers over an empty body.
		res.Cleartext = stripBody(raw, "")
	}
	return res
}

func capFor(lim Limits, size int) int64 {
	c := int64(16 * size)
	if c < 4<<20 {
		c = 4 << 20
	}
	if c > lim.MaxDecompressed {
		c = lim.MaxDecompressed
	}
	return c
}

type unwrapper struct {
	keys   *Keys
	lim    Limits
	now    time.Time
	budget int64
}

// unwrap handles one entity. scope is "" when the entity is all the
// message says, else what part of it the entity is (see SignedPart).
func (u *unwrapper) unwrap(res *Result, msg []byte, depth int, scope string) {
	if depth >= u.lim.MaxDepth {
		return
	}
	hdr, body := rawmime.SplitMessage(msg)
	ct, params := rawmime.MediaType(rawmime.HeaderValue(hdr, "Content-Type"), "text/plain")
	switch {
	case ct == "multipart/encrypted" && strings.Contains(strings.ToLower(params["protocol"]), "pgp-encrypted"):
		parts := splitParts(body, params["boundary"], 10)
		if len(parts) < 2 {
			res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "malformed PGP/MIME: missing encrypted part"
			res.Cleartext = stripBody(msg, "")
			return
		}
		_, pb := rawmime.SplitMessage(parts[1])
		plain, ok := u.decrypt(res, pb)
		if !ok {
			res.Cleartext = stripBody(msg, "")
			return
		}
		inner := replaceBody(hdr, plain)
		res.Cleartext = inner
		u.protectedHeaders(res, plain)
		u.unwrap(res, inner, depth+1, scope) // signed inside encrypted (RFC 3156 6.1)
	case ct == "multipart/signed" && strings.Contains(strings.ToLower(params["protocol"]), "pgp-signature"):
		parts := splitParts(body, params["boundary"], 10)
		if len(parts) < 2 {
			res.Signature, res.SignatureDetail = vocab.SigBad, "malformed PGP/MIME signature"
			return
		}
		_, sigBody := rawmime.SplitMessage(parts[1])
		u.verifyDetached(res, rawmime.Canonical(parts[0]), sigBody, scope)
		inner := replaceBody(hdr, parts[0])
		res.Cleartext = inner
		u.protectedHeaders(res, parts[0])
		u.unwrap(res, inner, depth+1, scope)
	case ct == "multipart/signed" && strings.Contains(strings.ToLower(params["protocol"]), "pkcs7-signature"):
		// S/MIME, detached: the first part is signed as it is written.
		parts := splitParts(body, params["boundary"], 10)
		if len(parts) < 2 {
			res.sigMethod, res.Signature, res.SignatureDetail = "smime", vocab.SigBad, "malformed S/MIME signature: missing signature part"
			return
		}
		sh, sb := rawmime.SplitMessage(parts[1])
		der := decodeBody(sb, rawmime.HeaderValue(sh, "Content-Transfer-Encoding"), len(sb)+16)
		u.smimeVerify(res, der, rawmime.Canonical(parts[0]), scope)
		inner := replaceBody(hdr, parts[0])
		res.Cleartext = inner
		u.unwrap(res, inner, depth+1, scope)
	case ct == "application/pkcs7-mime" || ct == "application/x-pkcs7-mime":
		// S/MIME, opaque: enveloped (encrypted) or signed-data with the
		// entity inside.
		der := decodeBody(body, rawmime.HeaderValue(hdr, "Content-Transfer-Encoding"), len(body)+16)
		var inner []byte
		if contentTypeOf(der).Equal(oidSignedData) {
			content, ok := u.smimeVerify(res, der, nil, scope)
			if !ok {
				res.Cleartext = stripBody(msg, "")
				return
			}
			inner = replaceBody(hdr, content)
		} else {
			plain, ok := u.smimeDecrypt(res, der)
			if !ok {
				res.Cleartext = stripBody(msg, "")
				return
			}
			inner = replaceBody(hdr, plain)
			u.protectedHeaders(res, plain)
		}
		res.Cleartext = inner
		u.unwrap(res, inner, depth+1, scope) // signed inside encrypted, or the other way
	case strings.HasPrefix(ct, "multipart/"):
		// Inline PGP below a plain multipart: armored text parts and
		// encrypted attachments (.asc, .pgp, .gpg, application/pgp-encrypted).
		u.unwrapParts(res, msg, hdr, body, ct, params["boundary"], depth, scope)
	case ct == "text/plain":
		text := decodeBody(body, rawmime.HeaderValue(hdr, "Content-Transfer-Encoding"), len(body)+16)
		if i := bytes.Index(text, []byte("-----BEGIN PGP MESSAGE-----")); i >= 0 {
			j := bytes.Index(text[i:], []byte("-----END PGP MESSAGE-----"))
			end := len(text)
			if j >= 0 {
				end = i + j + len("-----END PGP MESSAGE-----")
			}
			plain, ok := u.decrypt(res, text[i:end])
			if !ok {
				res.Cleartext = stripBody(msg, string(text[:i])+string(text[end:]))
				return
			}
			// The plaintext of an inline message is text, not MIME: keep
			// the outer header (minus the transfer encoding).
			newText := append(append(append([]byte{}, text[:i]...), plain...), text[end:]...)
			res.Cleartext = replaceText(hdr, newText)
			u.unwrap(res, res.Cleartext, depth+1, within(scope, text[:i], text[end:], "the encrypted block of the text"))
			return
		}
		if i := bytes.Index(text, []byte("-----BEGIN PGP SIGNED MESSAGE-----")); i >= 0 {
			b, rest := clearsign.Decode(text[i:])
			if b == nil {
				res.Signature, res.SignatureDetail = vocab.SigBad, "unreadable cleartext signature"
				return
			}
			u.verifyClearsigned(res, b, within(scope, text[:i], rest, "the clearsigned block of the text"))
			newText := append(append(append([]byte{}, text[:i]...), b.Plaintext...), rest...)
			res.Cleartext = replaceText(hdr, newText)
		}
	}
}

// decrypt decrypts one OpenPGP message (armored or binary), reading at most
// the budget. It returns the plaintext only when the integrity check passed.
func (u *unwrapper) decrypt(res *Result, data []byte) ([]byte, bool) {
	var r io.Reader = bytes.NewReader(data)
	if bytes.Contains(data[:min(len(data), 200)], []byte("-----BEGIN PGP")) {
		blk, err := armor.Decode(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n")))
		if err != nil {
			res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "bad armour: "+err.Error()
			return nil, false
		}
		r = blk.Body
	}
	if len(u.keys.Team) == 0 {
		res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "no team key configured"
		return nil, false
	}
	// The size limit is ours (the LimitReader below), not go-crypto's
	// MaxDecompressedMessageSize: past that one the library reports an
	// opaque "parsing error" for a bzip2 packet (it hides what failed
	// under the session key), which read as tampering; counting the
	// plaintext we read tells a bomb from a forgery for every algorithm.
	cfg := &packet.Config{Time: func() time.Time { return u.now }}
	ring := append(append(openpgp.EntityList{}, u.keys.Team...), u.keys.Known...)
	md, err := openpgp.ReadMessage(r, ring, nil, cfg)
	if err != nil {
		res.Decryption = vocab.DecCannotDecrypt
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			res.DecryptionDetail = "not encrypted to a team key"
		} else {
			res.DecryptionDetail = err.Error()
		}
		return nil, false
	}
	if !md.IsEncrypted {
		res.DecryptionDetail = "not encrypted"
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(md.UnverifiedBody, u.budget+1))
	if n > u.budget {
		res.Decryption = vocab.DecRefused
		res.DecryptionDetail = fmt.Sprintf("decompressed size exceeds the limit of %d bytes (crypto.max_decompressed_bytes); stopped reading", u.budget)
		return nil, false
	}
	if err != nil {
		if strings.Contains(err.Error(), "decompress") || strings.Contains(err.Error(), "size") && strings.Contains(err.Error(), "exceed") {
			res.Decryption = vocab.DecRefused
			res.DecryptionDetail = "decompressed size exceeds the limit: " + err.Error()
			return nil, false
		}
		res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "integrity check failed: "+err.Error()
		return nil, false
	}
	u.budget -= n
	res.Decryption = vocab.DecOK
	if md.IsEncrypted && md.DecryptedWith.Entity != nil {
		res.DecryptionDetail = "decrypted with team key " + Fingerprint(md.DecryptedWith.Entity)
	}
	if md.IsSigned {
		switch {
		case md.SignedBy == nil:
			res.Signature = vocab.SigUnknownKey
			res.SignerFingerprint = strings.ToUpper(hex.EncodeToString(md.SignedByFingerprint))
			if res.SignerFingerprint == "" {
				res.SignerFingerprint = fmt.Sprintf("%016X", md.SignedByKeyId)
			}
		default:
			res.Signature = sigStatus(md.SignatureError)
			u.setSigner(res, md.SignedBy.Entity)
			if md.SignatureError != nil {
				res.SignatureDetail = md.SignatureError.Error()
			}
		}
	}
	return buf.Bytes(), true
}

func sigStatus(err error) vocab.SigStatus {
	switch {
	case err == nil:
		return vocab.SigGood
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return vocab.SigRevoked
	case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrSignatureExpired):
		return vocab.SigExpired
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return vocab.SigUnknownKey
	}
	return vocab.SigBad
}

func (u *unwrapper) setSigner(res *Result, e *openpgp.Entity) {
	res.SignerFingerprint = Fingerprint(e)
	res.signerAddrs = nil
	for _, id := range e.Identities {
		if id.UserId != nil && id.UserId.Email != "" {
			res.signerAddrs = append(res.signerAddrs, strings.ToLower(id.UserId.Email))
		}
	}
	if pi := e.PrimaryIdentity(); pi != nil {
		res.Signer = pi.Name
		if pi.UserId != nil {
			res.SignerEmail = strings.ToLower(pi.UserId.Email)
		}
	}
}

// issuer reads the first signature packet for its issuer (to name an
// unknown signer).
func issuer(sigData []byte) string {
	p, err := packet.Read(bytes.NewReader(sigData))
	if err != nil {
		return ""
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return ""
	}
	if len(s.IssuerFingerprint) > 0 {
		return strings.ToUpper(hex.EncodeToString(s.IssuerFingerprint))
	}
	if s.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return ""
}

// within is the scope of a block inside a text: the text's own scope when
// nothing but white space surrounds the block, else the block named.
func within(scope string, before, after []byte, block string) string {
	b, a := len(bytes.TrimSpace(before)), len(bytes.TrimSpace(after))
	if b == 0 && a == 0 {
		return scope
	}
	s := fmt.Sprintf("%s (%d bytes of text before it and %d after it are not signed)", block, b, a)
	if scope != "" {
		s += ", in " + scope
	}
	return s
}

func (u *unwrapper) verifyDetached(res *Result, signed, armoredSig []byte, scope string) {
	blk, err := armor.Decode(bytes.NewReader(bytes.TrimLeft(armoredSig, " \t\r\n")))
	if err != nil {
		res.Signature, res.SignatureDetail = vocab.SigBad, "unreadable signature: "+err.Error()
		return
	}
	sigData, err := io.ReadAll(io.LimitReader(blk.Body, 1<<20))
	if err != nil {
		res.Signature, res.SignatureDetail = vocab.SigBad, "unreadable signature: "+err.Error()
		return
	}
	u.check(res, signed, sigData, scope)
}

func (u *unwrapper) verifyClearsigned(res *Result, b *clearsign.Block, scope string) {
	sigData, err := io.ReadAll(io.LimitReader(b.ArmoredSignature.Body, 1<<20))
	if err != nil {
		res.Signature, res.SignatureDetail = vocab.SigBad, "unreadable signature: "+err.Error()
		return
	}
	u.check(res, b.Bytes, sigData, scope)
}

func (u *unwrapper) check(res *Result, signed, sigData []byte, scope string) {
	res.SignedPart = scope
	cfg := &packet.Config{Time: func() time.Time { return u.now }}
	_, signer, err := openpgp.VerifyDetachedSignature(u.keys.verify, bytes.NewReader(signed), bytes.NewReader(sigData), cfg)
	res.Signature = sigStatus(err)
	if err != nil {
		res.SignatureDetail = err.Error()
	}
	if signer != nil {
		u.setSigner(res, signer)
	} else {
		res.SignerFingerprint = issuer(sigData)
	}
}

// protectedHeaders takes the Subject from an inner part that carries
// protected headers (RFC 9788, and the older Memory Hole style).
func (u *unwrapper) protectedHeaders(res *Result, inner []byte) {
	ih, ib := rawmime.SplitMessage(inner)
	if s := rawmime.HeaderValue(ih, "Subject"); s != "" {
		res.ProtectedSubject = decodeWords(s)
		return
	}
	// The older "Memory Hole" layout (Enigmail, Thunderbird before RFC
	// 9788): a multipart/mixed whose first part is text/rfc822-headers
	// holding the real Subject.
	ct, params := rawmime.MediaType(rawmime.HeaderValue(ih, "Content-Type"), "text/plain")
	if ct != "multipart/mixed" {
		return
	}
	parts := splitParts(ib, params["boundary"], 4)
	if len(parts) == 0 {
		return
	}
	ph, pb := rawmime.SplitMessage(parts[0])
	if pct, _ := rawmime.MediaType(rawmime.HeaderValue(ph, "Content-Type"), "text/plain"); pct == "text/rfc822-headers" {
		if s := rawmime.HeaderValue(pb, "Subject"); s != "" {
			res.ProtectedSubject = decodeWords(s)
		}
	}
}

// unwrapParts handles inline OpenPGP inside a plain multipart: each part
// that is armored text, or an encrypted attachment, is unwrapped in place
// (its decrypted content replaces it, as text or as an attachment named
// without the .asc/.pgp/.gpg), and the message is rebuilt around the same
// boundary. Parts without OpenPGP are kept byte for byte.
func (u *unwrapper) unwrapParts(res *Result, msg, hdr, body []byte, ct, boundary string, depth int, scope string) {
	if boundary == "" {
		return
	}
	parts := splitParts(body, boundary, 200)
	partScope := func(i int) string {
		if len(parts) == 1 {
			return scope
		}
		s := fmt.Sprintf("part %d of the %d parts of a %s", i+1, len(parts), ct)
		if scope != "" {
			s += ", in " + scope
		}
		return s
	}
	changed := false
	for i, part := range parts {
		ph, pb := rawmime.SplitMessage(part)
		pct, pparams := rawmime.MediaType(rawmime.HeaderValue(ph, "Content-Type"), "text/plain")
		name := strings.ToLower(pparams["name"])
		if _, dp := rawmime.MediaType(rawmime.HeaderValue(ph, "Content-Disposition"), "attachment"); dp["filename"] != "" {
			name = strings.ToLower(dp["filename"])
		}
		encAttachment := pct == "application/pgp-encrypted" ||
			strings.HasSuffix(name, ".asc") || strings.HasSuffix(name, ".pgp") || strings.HasSuffix(name, ".gpg")
		switch {
		case pct == "text/plain" && name == "" || strings.HasPrefix(pct, "multipart/"):
			sub := Result{Decryption: vocab.DecNone, Signature: vocab.SigNone}
			u.unwrap(&sub, part, depth+1, partScope(i))
			if sub.Decryption == vocab.DecNone && sub.Signature == vocab.SigNone {
				continue
			}
			mergeVerdicts(res, &sub)
			if sub.Cleartext != nil {
				parts[i], changed = sub.Cleartext, true
			}
		case encAttachment:
			data := decodeBody(pb, rawmime.HeaderValue(ph, "Content-Transfer-Encoding"), len(pb)+16)
			if bytes.Contains(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) || bytes.Contains(data, []byte("-----BEGIN PGP SIGNATURE-----")) {
				continue // a key or a detached signature, not a message
			}
			plain, ok := u.decrypt(res, data)
			if !ok {
				continue
			}
			out := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, ".asc"), ".pgp"), ".gpg")
			var b bytes.Buffer
			if utf8.Valid(plain) && !bytes.ContainsRune(plain, 0) {
				fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\nContent-Disposition: inline; filename=%q\nContent-Transfer-Encoding: 8bit\n\n", out)
				b.Write(plain)
			} else {
				fmt.Fprintf(&b, "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=%q\nContent-Transfer-Encoding: base64\n\n", out)
				b.Write(rawmime.Base64Lines(plain, "\n"))
			}
			parts[i], changed = b.Bytes(), true
		}
	}
	if !changed {
		return
	}
	var out bytes.Buffer
	out.Write(hdr)
	if !bytes.HasSuffix(hdr, []byte("\n\n")) && !bytes.HasSuffix(hdr, []byte("\r\n\r\n")) {
		out.WriteString("\n")
	}
	for _, p := range parts {
		fmt.Fprintf(&out, "--%s\n", boundary)
		out.Write(p)
		if !bytes.HasSuffix(p, []byte("\n")) {
			out.WriteString("\n")
		}
	}
	fmt.Fprintf(&out, "--%s--\n", boundary)
	res.Cleartext = out.Bytes()
	_ = msg
}

// mergeVerdicts carries a part's verdicts up to the message: the first
// decryption and signature found count.
func mergeVerdicts(res, sub *Result) {
	if res.Decryption == vocab.DecNone && sub.Decryption != vocab.DecNone {
		res.Decryption, res.DecryptionDetail = sub.Decryption, sub.DecryptionDetail
	}
	if res.Signature == vocab.SigNone && sub.Signature != vocab.SigNone {
		res.Signature, res.SignatureDetail = sub.Signature, sub.SignatureDetail
		res.SignerFingerprint, res.Signer, res.signerAddrs = sub.SignerFingerprint, sub.Signer, sub.signerAddrs
		res.SignedPart = sub.SignedPart
	}
	if res.ProtectedSubject == "" {
		res.ProtectedSubject = sub.ProtectedSubject
	}
}

// replaceBody returns the outer header without its Content-* fields,
// followed by the inner entity (its own header and body).
func replaceBody(outerHdr, inner []byte) []byte {
	var out bytes.Buffer
	out.Write(dropContentFields(outerHdr))
	out.Write(inner)
	return out.Bytes()
}

// replaceText keeps the outer Content-Type but drops the transfer encoding,
// since the new body is already decoded text.
func replaceText(outerHdr, text []byte) []byte {
	var out bytes.Buffer
	for _, line := range rawmime.SplitFields(outerHdr) {
		if strings.HasPrefix(strings.ToLower(line), "content-transfer-encoding:") {
			continue
		}
		out.WriteString(line)
	}
	out.WriteString("Content-Transfer-Encoding: 8bit\n\n")
	out.Write(text)
	return out.Bytes()
}

// stripBody replaces the body with plain text (what is left to read when a
// message cannot be decrypted).
func stripBody(msg []byte, text string) []byte {
	hdr, _ := rawmime.SplitMessage(msg)
	var out bytes.Buffer
	out.Write(dropContentFields(hdr))
	out.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	out.WriteString(text)
	return out.Bytes()
}

func dropContentFields(hdr []byte) []byte {
	var out bytes.Buffer
	for _, f := range rawmime.SplitFields(hdr) {
		if strings.HasPrefix(strings.ToLower(f), "content-") {
			continue
		}
		out.WriteString(f)
	}
	return out.Bytes()
}

// splitParts is a multipart body's parts, byte for byte.
func splitParts(body []byte, boundary string, maxParts int) [][]byte {
	p, _ := rawmime.SplitMultipart(body, boundary, maxParts)
	return p
}

// decodeBody undoes a Content-Transfer-Encoding leniently.
func decodeBody(body []byte, cte string, limit int) []byte {
	b, _ := rawmime.DecodeTransfer(body, cte, limit)
	return b
}

func decodeWords(s string) string { return parse.DecodeHeader(s) }
