package crypto

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

func keysOf(t *testing.T, p *testenv.PKI) *Keys {
	t.Helper()
	s, err := LoadSMIME(p.Read("team.pem"), p.Read("team.key"), nil, p.Read("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &Keys{SMIME: s}
}

const inner = "Content-Type: text/plain; charset=utf-8\r\n\r\nScanning from 198.51.100.23 seen by our sensors.\r\n"

const outlook = "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOutlook text: 198.51.100.24\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Outlook text: 198.51.100.24</p>\r\n--alt--\r\n"

// TestSMIMEVerdicts: messages signed and encrypted by OpenSSL get the
// verdicts `openssl cms` gives them (its exit status), and the entity
// inside is what parse reads.
func TestSMIMEVerdicts(t *testing.T) {
	p := testenv.NewPKI(t)
	keys := keysOf(t, p)
	hdr := []string{"-from", "cert@partner.example", "-to", "csirt@example.org", "-subject", "Scan report"}
	sign := func(signer string, content string, extra ...string) []byte {
		args := append([]string{"cms", "-sign", "-signer", signer + ".pem", "-inkey", signer + ".key", "-md", "sha256"}, extra...)
		return p.Run([]byte(content), append(args, hdr...)...)
	}
	encrypt := func(to string, content []byte, alg string) []byte {
		args := append([]string{"cms", "-encrypt", "-" + alg}, hdr...)
		return p.Run(content, append(args, to+".pem")...) // the recipient after the options
	}
	detached := sign("partner", inner)
	tampered := bytes.Replace(detached, []byte("198.51.100.23"), []byte("198.51.100.99"), 1)
	later := time.Now().Add(60 * 24 * time.Hour)
	cases := []struct {
		name          string
		msg           []byte
		at            time.Time
		dec, sig      string
		text, signer  string
		opensslAgrees bool // openssl cms -verify exits 0 exactly when the verdict is good
	}{
		{"detached signature", detached, time.Time{}, "none", "good", "198.51.100.23", "cert@partner.example", true},
		{"opaque signature", sign("partner", inner, "-nodetach"), time.Time{}, "none", "good", "198.51.100.23", "cert@partner.example", true},
		{"tampered", tampered, time.Time{}, "none", "bad", "198.51.100.99", "cert@partner.example", true},
		{"untrusted CA", sign("stranger", inner), time.Time{}, "none", "unknown-key", "198.51.100.23", "x@stranger.example", true},
		{"expired", detached, later, "none", "expired", "198.51.100.23", "cert@partner.example", true},
		{"ECDSA signer", sign("ecpartner", inner), time.Time{}, "none", "good", "198.51.100.23", "ec@partner.example", true},
		{"Outlook alternative inside signed", sign("partner", outlook), time.Time{}, "none", "good", "198.51.100.24", "cert@partner.example", true},
		{"encrypted to the team, AES-CBC", encrypt("team", []byte(inner), "aes-256-cbc"), time.Time{}, "ok", "none", "198.51.100.23", "", false},
		{"encrypted to the team, AES-GCM", encrypt("team", []byte(inner), "aes-256-gcm"), time.Time{}, "ok", "none", "198.51.100.23", "", false},
		{"encrypted to someone else", encrypt("someone", []byte(inner), "aes-256-cbc"), time.Time{}, "cannot-decrypt", "none", "", "", false},
		{"signed, then encrypted", encrypt("team", sign("partner", inner), "aes-256-gcm"), time.Time{}, "ok", "good", "198.51.100.23", "cert@partner.example", false},
		{"encrypted, then signed", sign("partner", string(encrypt("team", []byte(inner), "aes-256-cbc")), "-nodetach"), time.Time{}, "ok", "good", "198.51.100.23", "cert@partner.example", false},
	}
	for _, c := range cases {
		now := time.Now()
		if !c.at.IsZero() {
			now = c.at
		}
		res := Unwrap(c.msg, keys, Limits{}, now)
		if string(res.Decryption) != c.dec || string(res.Signature) != c.sig {
			t.Errorf("%s: decryption %s (%s), signature %s (%s); want %s, %s", c.name, res.Decryption, res.DecryptionDetail, res.Signature, res.SignatureDetail, c.dec, c.sig)
			continue
		}
		if c.text != "" && !bytes.Contains(res.Cleartext, []byte(c.text)) {
			t.Errorf("%s: cleartext lacks %q:\n%s", c.name, c.text, res.Cleartext)
		}
		if c.sig != "none" && (res.SignatureMethod != "smime" || res.SignerEmail != c.signer || len(res.SignerCertSHA256) != 64 || !strings.Contains(res.SignerIssuer, "CN=")) {
			t.Errorf("%s: signer %+v", c.name, res)
		}
		if c.dec != "none" && res.DecryptionMethod != "smime" {
			t.Errorf("%s: decryption method %q", c.name, res.DecryptionMethod)
		}
		if c.opensslAgrees {
			if got := p.Verifies(c.msg, c.at); got != (c.sig == "good") {
				t.Errorf("%s: openssl cms -verify says %v, we say %s", c.name, got, c.sig)
			}
		}
		if c.sig == "good" && !res.SignerHasAddress(c.signer) {
			t.Errorf("%s: the signer's address is not bound", c.name)
		}
	}
}

// TestSMIMEBadInput: malformed S/MIME gives a verdict, never a panic.
func TestSMIMEBadInput(t *testing.T) {
	keys := &Keys{SMIME: &SMIME{}}
	for _, m := range []string{
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n",
		"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n",
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMAA=\r\n--b--\r\n",
	} {
		res := Unwrap([]byte(m), keys, Limits{}, time.Now())
		if res.Decryption == vocab.DecOK || res.Signature == vocab.SigGood {
			t.Errorf("%q: %s %s", m, res.Decryption, res.Signature)
		}
	}
}

// TestSMIMEOutVerifiesInOpenSSL: what the team signs, openssl cms -verify
// accepts (exit status 0) against the CA; what it encrypts to a
// correspondent, openssl cms -decrypt opens with the correspondent's key,
// and so does our own reader with the team's (it is encrypted to the team
// too).
func TestSMIMEOutVerifiesInOpenSSL(t *testing.T) {
	p := testenv.NewPKI(t)
	keys := keysOf(t, p)
	part := Part("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nThank you for your report CSIRT#2026-000001.\r\n")
	ct, body, err := keys.SMIME.SignMIME(part)
	if err != nil {
		t.Fatal(err)
	}
	signed := []byte("From: csirt@example.org\r\nTo: cert@partner.example\r\nSubject: ack\r\nMIME-Version: 1.0\r\nContent-Type: " + ct + "\r\n\r\n" + string(body))

	if !p.Verifies(signed, time.Time{}) {
		t.Fatalf("openssl cms -verify refuses our signature:\n%s", signed)
	}
	if res := Unwrap(signed, keys, Limits{}, time.Now()); res.Signature != vocab.SigGood || res.SignerEmail != "csirt@example.org" {
		t.Fatalf("our own reader: %s %s", res.Signature, res.SignatureDetail)
	}
	partner, _ := pemCerts(p.Read("partner.pem"))
	ect, ebody, err := keys.SMIME.EncryptMIME(Part("Content-Type: "+ct+"\r\n\r\n"+string(body)), partner)
	if err != nil {
		t.Fatal(err)
	}
	enc := []byte("From: csirt@example.org\r\nTo: cert@partner.example\r\nSubject: ack\r\nMIME-Version: 1.0\r\nContent-Type: " + ect + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + string(ebody))
	plain := p.Run(enc, "cms", "-decrypt", "-recip", "partner.pem", "-inkey", "partner.key")
	if !bytes.Contains(plain, []byte("multipart/signed")) || !p.Verifies(plain, time.Time{}) {
		t.Fatalf("openssl cms -decrypt, then -verify:\n%s", plain)
	}
	if res := Unwrap(enc, keys, Limits{}, time.Now()); res.Decryption != vocab.DecOK || res.Signature != vocab.SigGood {
		t.Fatalf("our own reader: %s (%s) %s", res.Decryption, res.DecryptionDetail, res.Signature)
	}
}

// TestSMIMEEncryptedKey: a key encrypted by openssl genpkey (PBES2,
// PBKDF2-HMAC-SHA256, AES-256-CBC) is read with its passphrase, refused
// without it or with a wrong one.
func TestSMIMEEncryptedKey(t *testing.T) {
	p := testenv.NewPKI(t)
	p.Run(nil, "pkcs8", "-topk8", "-v2", "aes256", "-in", "team.key", "-out", "team-enc.key", "-passout", "pass:correct horse")
	if _, err := LoadSMIME(p.Read("team.pem"), p.Read("team-enc.key"), []byte("correct horse"), p.Read("ca.pem")); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"", "wrong"} {
		if _, err := LoadSMIME(p.Read("team.pem"), p.Read("team-enc.key"), []byte(pass), p.Read("ca.pem")); err == nil {
			t.Fatalf("passphrase %q accepted", pass)
		}
	}
}
