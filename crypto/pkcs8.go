package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/pbkdf2"
)

// An encrypted PKCS #8 key (RFC 5958 EncryptedPrivateKeyInfo) with PBES2
// (RFC 8018): PBKDF2 with HMAC-SHA-1/-256/-512 and AES-CBC, what `openssl
// genpkey -aes-256-cbc` and `openssl pkcs8 -topk8 -v2 aes256` write. The
// standard library reads PKCS #8 keys only in clear.

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
)

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Encrypted []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

// maxIterations bounds PBKDF2 (a key file is the operator's, but a typo
// must not spin a core for an hour).
const maxIterations = 10_000_000

// decryptPKCS8 returns the clear PKCS #8 DER of an encrypted one.
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted key: %v", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted key: %v is not PBES2", info.Algorithm.Algorithm)
	}
	var p pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &p); err != nil || !p.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, errors.New("encrypted key: PBES2 without PBKDF2")
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &kdf); err != nil || kdf.Iterations < 1 || kdf.Iterations > maxIterations {
		return nil, errors.New("encrypted key: unreadable PBKDF2 parameters")
	}
	var prf func() hash.Hash
	switch a := kdf.PRF.Algorithm; {
	case len(a) == 0 || a.Equal(oidHMACSHA1):
		prf = sha1.New
	case a.Equal(oidHMACSHA256):
		prf = sha256.New
	case a.Equal(oidHMACSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("encrypted key: PBKDF2 with %v", a)
	}
	keyLen := aesKeyLen(p.Scheme.Algorithm, oidAES128CBC, oidAES192CBC, oidAES256CBC)
	if keyLen == 0 {
		return nil, fmt.Errorf("encrypted key: cipher %v is not AES-CBC", p.Scheme.Algorithm)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(p.Scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted key: bad IV")
	}
	if len(info.Encrypted) == 0 || len(info.Encrypted)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted key: bad length")
	}
	block, _ := aes.NewCipher(pbkdf2.Key(passphrase, kdf.Salt, kdf.Iterations, keyLen, prf))
	plain := make([]byte, len(info.Encrypted))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.Encrypted)
	n := int(plain[len(plain)-1])
	if n < 1 || n > aes.BlockSize || n > len(plain) {
		return nil, errors.New("encrypted key: wrong passphrase")
	}
	for _, b := range plain[len(plain)-n:] {
		if int(b) != n {
			return nil, errors.New("encrypted key: wrong passphrase")
		}
	}
	return plain[:len(plain)-n], nil
}

// aesKeyLen is the key length of alg when it is one of the AES-128, -192
// and -256 identifiers given (in that order), else 0.
func aesKeyLen(alg asn1.ObjectIdentifier, aes128, aes192, aes256 asn1.ObjectIdentifier) int {
	switch {
	case alg.Equal(aes128):
		return 16
	case alg.Equal(aes192):
		return 24
	case alg.Equal(aes256):
		return 32
	}
	return 0
}
