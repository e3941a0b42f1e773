package crypto

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

// SMIME is the team's S/MIME identity and whom it trusts.
type SMIME struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // intermediates sent with our signatures
	Key   crypto.PrivateKey
	// Anchors are the trust anchors correspondents' chains must end in
	// (crypto.smime.trust_anchors_file); nil trusts nobody.
	Anchors *x509.CertPool
}

// LoadSMIME reads a PEM certificate (with its chain after it), a PEM
// private key (PKCS#8, PKCS#1 or SEC 1; an ENCRYPTED PRIVATE KEY with
// passphrase) and a PEM bundle of trust anchors; certPEM and keyPEM may
// be empty (no S/MIME identity: nothing is decrypted, verification still
// works).
func LoadSMIME(certPEM, keyPEM, passphrase, anchorsPEM []byte) (*SMIME, error) {
	s := &SMIME{}
	if len(certPEM) > 0 {
		certs, err := pemCerts(certPEM)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("certificate: %v", orNoPEM(err))
		}
		s.Cert, s.Chain = certs[0], certs[1:]
		blk, _ := pem.Decode(keyPEM)
		if blk == nil {
			return nil, errors.New("key: no PEM block")
		}
		if blk.Type == "ENCRYPTED PRIVATE KEY" {
			if len(passphrase) == 0 {
				return nil, errors.New("key: encrypted, and no passphrase given (crypto.smime.key_passphrase_file)")
			}
			der, err := decryptPKCS8(blk.Bytes, passphrase)
			if err != nil {
				return nil, fmt.Errorf("key: %v", err)
			}
			blk = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
		}
		if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			s.Key = k
		} else if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
			s.Key = k
		} else if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
			s.Key = k
		} else {
			return nil, fmt.Errorf("key: not a PKCS#8, PKCS#1 or SEC 1 private key")
		}
	}
	if len(anchorsPEM) > 0 {
		certs, err := pemCerts(anchorsPEM)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("trust anchors: %v", orNoPEM(err))
		}
		s.Anchors = x509.NewCertPool()
		for _, c := range certs {
			s.Anchors.AddCert(c)
		}
	}
	return s, nil
}

func orNoPEM(err error) error {
	if err == nil {
		return errors.New("no PEM certificate")
	}
	return err
}

func pemCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// S/MIME content types.
var (
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	oidRSAEncryption     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAESOAEP         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidAES128GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidAES192GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 26}
	oidAES256GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidSHA1              = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidEmailAddress      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

// contentTypeOf is the CMS content type of der ("" when it is not CMS).
func contentTypeOf(der []byte) asn1.ObjectIdentifier {
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil
	}
	return ci.ContentType
}

// smimeDecrypt decrypts enveloped-data (RSA key transport, AES-CBC or
// AES-GCM content encryption, through smallstep/pkcs7) or
// authEnveloped-data (RFC 5083, AES-GCM; written here, since the library
// has none). It returns the MIME entity inside.
func (u *unwrapper) smimeDecrypt(res *Result, der []byte) ([]byte, bool) {
	res.decMethod = "smime"
	s := u.keys.SMIME
	if s == nil || s.Cert == nil {
		res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "no team S/MIME certificate configured"
		return nil, false
	}
	var plain []byte
	var err error
	switch ct := contentTypeOf(der); {
	case ct.Equal(oidAuthEnvelopedData):
		plain, err = decryptAuthEnveloped(der, s)
	case ct.Equal(oidEnvelopedData):
		var p7 *pkcs7.PKCS7
		if p7, err = pkcs7.Parse(der); err == nil {
			plain, err = p7.Decrypt(s.Cert, s.Key)
			if err != nil && strings.Contains(err.Error(), "no enveloped recipient") {
				err = errNotForUs
			}
		}
	default:
		err = errors.New("not enveloped-data")
	}
	switch {
	case errors.Is(err, errNotForUs):
		res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "not encrypted to the team's S/MIME certificate"
		return nil, false
	case err != nil:
		res.Decryption, res.DecryptionDetail = vocab.DecCannotDecrypt, "S/MIME: "+err.Error()
		return nil, false
	case int64(len(plain)) > u.budget:
		res.Decryption, res.DecryptionDetail = vocab.DecRefused, fmt.Sprintf("decrypted size exceeds the limit of %d bytes", u.budget)
		return nil, false
	}
	u.budget -= int64(len(plain))
	res.Decryption, res.DecryptionDetail = vocab.DecOK, "decrypted with the team's S/MIME certificate "+certSHA256(s.Cert)[:16]
	return plain, true
}

var errNotForUs = errors.New("not encrypted to us")

type authEnvelopedData struct {
	Version        int
	OriginatorInfo asn1.RawValue   `asn1:"optional,tag:0"`
	RecipientInfos []asn1.RawValue `asn1:"set"`
	Content        encryptedContentInfo
	AuthAttrs      asn1.RawValue `asn1:"optional,tag:1"`
	MAC            []byte
	UnauthAttrs    asn1.RawValue `asn1:"optional,tag:2"`
}

type encryptedContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Algorithm   pkix.AlgorithmIdentifier
	Encrypted   asn1.RawValue `asn1:"optional,tag:0"`
}

type keyTransRecipientInfo struct {
	Version      int
	RID          asn1.RawValue
	Algorithm    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial asn1.RawValue
}

type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

type oaepParameters struct {
	Hash pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
}

// decryptAuthEnveloped opens an RFC 5083 authEnveloped-data with the
// team's RSA key.
func decryptAuthEnveloped(der []byte, s *SMIME) ([]byte, error) {
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, err
	}
	var ad authEnvelopedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &ad); err != nil {
		return nil, fmt.Errorf("authEnveloped-data: %v", err)
	}
	alg := ad.Content.Algorithm.Algorithm
	keyLen := aesKeyLen(alg, oidAES128GCM, oidAES192GCM, oidAES256GCM)
	if keyLen == 0 {
		return nil, fmt.Errorf("content encryption %v is not AES-GCM", alg)
	}
	key, err := recipientKey(ad.RecipientInfos, s, keyLen)
	if err != nil {
		return nil, err
	}
	var p gcmParameters
	if _, err := asn1.Unmarshal(ad.Content.Algorithm.Parameters.FullBytes, &p); err != nil {
		return nil, fmt.Errorf("GCM parameters: %v", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var gcm cipher.AEAD
	switch {
	case len(p.Nonce) == 12 && p.ICVLen == 16:
		gcm, err = cipher.NewGCM(block)
	case len(p.Nonce) == 12:
		gcm, err = cipher.NewGCMWithTagSize(block, p.ICVLen)
	case p.ICVLen == 16:
		gcm, err = cipher.NewGCMWithNonceSize(block, len(p.Nonce))
	default:
		err = fmt.Errorf("GCM with a %d-byte nonce and a %d-byte tag", len(p.Nonce), p.ICVLen)
	}
	if err != nil {
		return nil, err
	}
	var aad []byte
	if len(ad.AuthAttrs.FullBytes) > 0 {
		// The AAD is the DER of the attributes as a SET OF (RFC 5083).
		aad = append([]byte{0x31}, ad.AuthAttrs.FullBytes[1:]...)
	}
	plain, err := gcm.Open(nil, p.Nonce, append(ad.Content.Encrypted.Bytes, ad.MAC...), aad)
	if err != nil {
		return nil, errors.New("authentication of the content failed (tampered, or a wrong key)")
	}
	return plain, nil
}

// recipientKey finds the key transport recipient that is the team's
// certificate and decrypts the content-encryption key of keyLen bytes.
// PKCS #1 v1.5 is unwrapped with SessionKeyLen: a malformed block gives a
// random key (and the content's authentication then fails) instead of an
// error an attacker could tell apart (Bleichenbacher).
func recipientKey(ris []asn1.RawValue, s *SMIME, keyLen int) ([]byte, error) {
	rsaKey, ok := s.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("only RSA key transport is supported")
	}
	for _, raw := range ris {
		var ri keyTransRecipientInfo
		if _, err := asn1.Unmarshal(raw.FullBytes, &ri); err != nil {
			continue // another kind of recipient (key agreement, a password)
		}
		if !recipientIs(ri.RID, s.Cert) {
			continue
		}
		switch {
		case ri.Algorithm.Algorithm.Equal(oidRSAEncryption):
			// What OpenSSL and every mail client send by default; reading it
			// is interoperation, with the session-key-length mitigation.
			//lint:ignore SA1019 S/MIME senders use PKCS #1 v1.5 key transport
			return rsaKey.Decrypt(rand.Reader, ri.EncryptedKey, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		case ri.Algorithm.Algorithm.Equal(oidRSAESOAEP):
			var p oaepParameters
			_, _ = asn1.Unmarshal(ri.Algorithm.Parameters.FullBytes, &p)
			h := hashOf(p.Hash.Algorithm)
			if h == nil {
				return nil, errors.New("RSA-OAEP with an unknown hash")
			}
			return rsa.DecryptOAEP(h, nil, rsaKey, ri.EncryptedKey, nil)
		default:
			return nil, fmt.Errorf("key transport %v is not RSA", ri.Algorithm.Algorithm)
		}
	}
	return nil, errNotForUs
}

func hashOf(oid asn1.ObjectIdentifier) hash.Hash {
	switch {
	case len(oid) == 0 || oid.Equal(oidSHA1):
		return sha1.New()
	case oid.Equal(oidSHA256):
		return sha256.New()
	case oid.Equal(oidSHA384):
		return sha512.New384()
	case oid.Equal(oidSHA512):
		return sha512.New()
	}
	return nil
}

// recipientIs tells whether a recipient identifier names cert: by issuer
// and serial number, or by subject key identifier ([0]).
func recipientIs(rid asn1.RawValue, cert *x509.Certificate) bool {
	if rid.Class == asn1.ClassContextSpecific && rid.Tag == 0 {
		return len(cert.SubjectKeyId) > 0 && bytes.Equal(rid.Bytes, cert.SubjectKeyId)
	}
	var ias issuerAndSerial
	if _, err := asn1.Unmarshal(rid.FullBytes, &ias); err != nil {
		return false
	}
	var serial asn1.RawValue
	sb, _ := asn1.Marshal(cert.SerialNumber)
	_, _ = asn1.Unmarshal(sb, &serial)
	return bytes.Equal(ias.Issuer.FullBytes, cert.RawIssuer) && bytes.Equal(ias.Serial.Bytes, serial.Bytes)
}

// smimeVerify verifies signed-data over content (detached: content is the
// signed MIME entity; opaque: nil, the content is inside) and returns the
// content. The verdict is good only for a valid signature by a
// certificate that chains to a trust anchor, is valid now (or at the
// signing time it states), and may sign mail.
func (u *unwrapper) smimeVerify(res *Result, der, content []byte, scope string) ([]byte, bool) {
	res.sigMethod, res.SignedPart = "smime", scope
	p7, err := pkcs7.Parse(der)
	if err != nil {
		res.Signature, res.SignatureDetail = vocab.SigBad, "S/MIME: unreadable signed-data: "+err.Error()
		return nil, false
	}
	if content != nil {
		p7.Content = content
	}
	if len(p7.Signers) == 0 {
		res.Signature, res.SignatureDetail = vocab.SigBad, "S/MIME: signed-data without a signer"
		return p7.Content, true
	}
	ee := p7.GetOnlySigner()
	if ee == nil && len(p7.Certificates) > 0 {
		ee = p7.Certificates[0]
	}
	if ee != nil {
		u.setCertSigner(res, ee)
	}
	var expired *pkcs7.SigningTimeNotValidError
	switch err := p7.Verify(); {
	case errors.As(err, &expired):
		res.Signature, res.SignatureDetail = vocab.SigExpired, err.Error()
		return p7.Content, true
	case err != nil:
		res.Signature, res.SignatureDetail = vocab.SigBad, "S/MIME: "+err.Error()
		return p7.Content, true
	case ee == nil:
		res.Signature, res.SignatureDetail = vocab.SigUnknownKey, "S/MIME: the signer's certificate is not in the message"
		return p7.Content, true
	}
	if u.now.After(ee.NotAfter) || u.now.Before(ee.NotBefore) {
		res.Signature, res.SignatureDetail = vocab.SigExpired, fmt.Sprintf("S/MIME: the signer's certificate is valid %s to %s", ee.NotBefore.Format(time.DateOnly), ee.NotAfter.Format(time.DateOnly))
		return p7.Content, true
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		res.Signature, res.SignatureDetail = vocab.SigBad, "S/MIME: the signer's certificate may not sign (key usage)"
		return p7.Content, true
	}
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	var anchors *x509.CertPool
	if u.keys.SMIME != nil {
		anchors = u.keys.SMIME.Anchors
	}
	if anchors == nil {
		res.Signature, res.SignatureDetail = vocab.SigUnknownKey, "S/MIME: no trust anchors configured (crypto.smime.trust_anchors_file)"
		return p7.Content, true
	}
	if _, err := ee.Verify(x509.VerifyOptions{Roots: anchors, Intermediates: inter, CurrentTime: u.now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		res.Signature, res.SignatureDetail = vocab.SigUnknownKey, "S/MIME: the signer's certificate is not trusted: "+err.Error()
		return p7.Content, true
	}
	res.Signature, res.SignatureDetail = vocab.SigGood, ""
	res.SignerCert = ee
	return p7.Content, true
}

// setCertSigner names an S/MIME signer: its subject, issuer, addresses
// (subjectAltName rfc822Name and the subject's emailAddress) and the
// certificate's SHA-256.
func (u *unwrapper) setCertSigner(res *Result, c *x509.Certificate) {
	res.Signer = c.Subject.CommonName
	res.SignerSubject, res.SignerIssuer = c.Subject.String(), c.Issuer.String()
	res.SignerCertSHA256 = certSHA256(c)
	res.SignerFingerprint = strings.ToUpper(res.SignerCertSHA256)
	res.signerAddrs = nil
	for _, a := range c.EmailAddresses {
		res.signerAddrs = append(res.signerAddrs, strings.ToLower(a))
	}
	for _, n := range c.Subject.Names {
		if v, ok := n.Value.(string); ok && n.Type.Equal(oidEmailAddress) && !slices.Contains(res.signerAddrs, strings.ToLower(v)) {
			res.signerAddrs = append(res.signerAddrs, strings.ToLower(v))
		}
	}
	if len(res.signerAddrs) > 0 {
		res.SignerEmail = res.signerAddrs[0]
	}
}

func certSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
