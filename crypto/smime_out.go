package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/smallstep/pkcs7"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

// SignMIME signs a MIME entity (its header and body, 7-bit) with the
// team's S/MIME certificate: the Content-Type and body of a
// multipart/signed (RFC 8551 section 3.5.3) whose first part is the entity
// as given and whose second is the detached signature (SHA-256, the chain
// included).
func (s *SMIME) SignMIME(part Part) (contentType string, body []byte, err error) {
	if s == nil || s.Cert == nil {
		return "", nil, errors.New("no team S/MIME certificate")
	}
	entity := rawmime.Canonical(part)
	sd, err := pkcs7.NewSignedData(entity)
	if err != nil {
		return "", nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.Cert, s.Key, s.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return "", nil, err
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return "", nil, err
	}
	b := boundary()
	var out bytes.Buffer
	out.WriteString("This is an S/MIME signed message.\r\n\r\n--" + b + "\r\n")
	// The CRLF before a delimiter belongs to the delimiter (RFC 2046
	// 5.1.1): one more, so that the part is the signed entity exactly.
	out.Write(entity)
	out.WriteString("\r\n")
	out.WriteString("--" + b + "\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n")
	writeBase64(&out, der)
	out.WriteString("--" + b + "--\r\n")
	return fmt.Sprintf(`multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="%s"`, b), out.Bytes(), nil
}

// EncryptMIME encrypts a MIME entity to the certificates (and to the
// team's own, so that the team can read what it sent) as enveloped-data:
// AES-256-CBC content encryption, RSAES-OAEP with SHA-256 key transport.
// It returns the Content-Type and base64 body of an
// application/pkcs7-mime entity.
func (s *SMIME) EncryptMIME(entity Part, to []*x509.Certificate) (contentType string, body []byte, err error) {
	recipients := append([]*x509.Certificate{}, to...)
	if s != nil && s.Cert != nil {
		recipients = append(recipients, s.Cert)
	}
	der, err := envelope(rawmime.Canonical(entity), recipients)
	if err != nil {
		return "", nil, err
	}
	var out bytes.Buffer
	writeBase64(&out, der)
	return `application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`, out.Bytes(), nil
}

func writeBase64(out *bytes.Buffer, b []byte) { out.Write(rawmime.Base64Lines(b, "\r\n")) }

var (
	oidData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidMGF1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

type envelopedData struct {
	Version        int
	RecipientInfos []ktriOut `asn1:"set"`
	Content        encryptedContentOut
}

type ktriOut struct {
	Version      int
	RID          issuerAndSerialOut
	Algorithm    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

type issuerAndSerialOut struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type encryptedContentOut struct {
	ContentType asn1.ObjectIdentifier
	Algorithm   pkix.AlgorithmIdentifier
	Encrypted   []byte `asn1:"tag:0"`
}

type oaepParamsOut struct {
	Hash pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF  pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
}

type contentInfoOut struct {
	ContentType asn1.ObjectIdentifier
	Content     envelopedData `asn1:"explicit,tag:0"`
}

// envelope is the DER of a ContentInfo holding enveloped-data of content
// for the recipients.
func envelope(content []byte, recipients []*x509.Certificate) ([]byte, error) {
	key := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(key)
	pad := aes.BlockSize - len(content)%aes.BlockSize
	padded := append(append([]byte{}, content...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)

	sha256ID := pkix.AlgorithmIdentifier{Algorithm: oidSHA256}
	hashDER, _ := asn1.Marshal(sha256ID)
	params, err := asn1.Marshal(oaepParamsOut{Hash: sha256ID, MGF: pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hashDER}}})
	if err != nil {
		return nil, err
	}
	ivDER, _ := asn1.Marshal(iv)
	ed := envelopedData{Version: 0, Content: encryptedContentOut{ContentType: oidData,
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}}, Encrypted: ct}}
	for _, c := range recipients {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the certificate of %v has no RSA key (only RSA key transport is supported)", c.Subject)
		}
		ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
		if err != nil {
			return nil, err
		}
		ed.RecipientInfos = append(ed.RecipientInfos, ktriOut{Version: 0, RID: issuerAndSerialOut{Issuer: asn1.RawValue{FullBytes: c.RawIssuer}, Serial: c.SerialNumber},
			Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidRSAESOAEP, Parameters: asn1.RawValue{FullBytes: params}}, EncryptedKey: ek})
	}
	return asn1.Marshal(contentInfoOut{ContentType: oidEnvelopedData, Content: ed})
}
