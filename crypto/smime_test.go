package crypto

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

// pki is a certificate world made by OpenSSL: a CA the team trusts, the
// team's certificate, correspondents' (RSA and ECDSA), and a CA nobody
// trusts.
type pki struct {
	t   *testing.T
	dir string
}

func (p *pki) run(stdin []byte, args ...string) []byte {
	p.t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = p.dir
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) read(name string) []byte {
	b, err := os.ReadFile(p.path(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// ca makes a self-signed CA.
func (p *pki) ca(name string) {
	p.run(nil, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name+".key", "-out", name+".pem", "-days", "30",
		"-subj", "/CN="+name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
}

// cert makes a certificate for email issued by ca; key is "rsa:2048" or
// "ec" (P-256).
func (p *pki) cert(name, email, ca, key string) {
	args := []string{"req", "-newkey", key, "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name + "/emailAddress=" + email}
	if key == "ec" {
		args = append(args[:2], append([]string{"ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"}, args[3:]...)...)
	}
	p.run(nil, args...)
	ext := "subjectAltName=email:" + email + "\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n"
	if err := os.WriteFile(p.path(name+".ext"), []byte(ext), 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.run(nil, "x509", "-req", "-in", name+".csr", "-CA", ca+".pem", "-CAkey", ca+".key", "-CAcreateserial", "-out", name+".pem", "-days", "30", "-extfile", name+".ext")
}

func newPKI(t *testing.T) *pki {
	testenv.Need(t, "openssl")
	p := &pki{t: t, dir: t.TempDir()}
	p.ca("ca")
	p.ca("other-ca")
	p.cert("team", "csirt@example.org", "ca", "rsa:2048")
	p.cert("partner", "cert@partner.example", "ca", "rsa:2048")
	p.cert("ecpartner", "ec@partner.example", "ca", "ec")
	p.cert("stranger", "x@stranger.example", "other-ca", "rsa:2048")
	p.cert("someone", "someone@else.example", "ca", "rsa:2048")
	return p
}

func (p *pki) keys() *Keys {
	s, err := LoadSMIME(p.read("team.pem"), p.read("team.key"), p.read("ca.pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	return &Keys{SMIME: s}
}

// opensslVerifies is `openssl cms -verify`'s verdict on a message: its
// exit status, at a time (0: now).
func (p *pki) opensslVerifies(msg []byte, at time.Time) bool {
	args := []string{"cms", "-verify", "-CAfile", p.path("ca.pem"), "-purpose", "smimesign", "-out", os.DevNull}
	if !at.IsZero() {
		args = append(args, "-attime", strconv.FormatInt(at.Unix(), 10))
	}
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(msg)
	return cmd.Run() == nil
}

const inner = "Content-Type: text/plain; charset=utf-8\r\n\r\nScanning from 198.51.100.23 seen by our sensors.\r\n"

const outlook = "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOutlook text: 198.51.100.24\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Outlook text: 198.51.100.24</p>\r\n--alt--\r\n"

// TestSMIMEVerdicts: messages signed and encrypted by OpenSSL get the
// verdicts `openssl cms` gives them (its exit status), and the entity
// inside is what parse reads.
func TestSMIMEVerdicts(t *testing.T) {
	p := newPKI(t)
	keys := p.keys()
	hdr := []string{"-from", "cert@partner.example", "-to", "csirt@example.org", "-subject", "Scan report"}
	sign := func(signer string, content string, extra ...string) []byte {
		args := append([]string{"cms", "-sign", "-signer", signer + ".pem", "-inkey", signer + ".key", "-md", "sha256"}, extra...)
		return p.run([]byte(content), append(args, hdr...)...)
	}
	encrypt := func(to string, content []byte, alg string) []byte {
		args := append([]string{"cms", "-encrypt", "-" + alg}, hdr...)
		return p.run(content, append(args, to+".pem")...) // the recipient after the options
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
			if got := p.opensslVerifies(c.msg, c.at); got != (c.sig == "good") {
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
