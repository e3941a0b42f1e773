package crypto

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

func loadCorpusKeys(t testing.TB) *Keys {
	t.Helper()
	team, err := os.ReadFile("../testdata/corpus/keys/team-secret-protected.asc")
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile("../testdata/corpus/keys/known-partners.asc")
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys([][]byte{team}, []byte("corpus-team-passphrase"), known)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLoadKeysErrors(t *testing.T) {
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-protected.asc")
	if _, err := LoadKeys([][]byte{team}, []byte("wrong"), nil); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := LoadKeys([][]byte{team}, nil, nil); err == nil {
		t.Fatal("protected key without passphrase accepted")
	}
	pub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	if _, err := LoadKeys([][]byte{pub}, nil, nil); err == nil || !strings.Contains(err.Error(), "not a secret key") {
		t.Fatalf("public key as team key: %v", err)
	}
}

// The decompression bomb is refused early, in bounded time and memory.
func TestBombRefusedQuickly(t *testing.T) {
	raw, err := os.ReadFile("../testdata/corpus/messages/16-decompression-bomb.eml")
	if err != nil {
		t.Fatal(err)
	}
	k := loadCorpusKeys(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res := Unwrap(raw, k, Limits{}, time.Now())
	runtime.ReadMemStats(&after)
	if res.Decryption != vocab.DecRefused {
		t.Fatalf("decryption %s (%s)", res.Decryption, res.DecryptionDetail)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Fatalf("allocated %d MB for the bomb", grown>>20)
	}
}

func TestGarbageNeverPanics(t *testing.T) {
	k := loadCorpusKeys(t)
	for _, body := range []string{
		"-----BEGIN PGP MESSAGE-----\n\nhQ\n-----END PGP MESSAGE-----\n",
		"-----BEGIN PGP MESSAGE-----\n\n" + strings.Repeat("A", 5000) + "\n=AAAA\n-----END PGP MESSAGE-----\n",
		"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
	} {
		res := Unwrap([]byte("From: a@b.example\nContent-Type: text/plain\n\n"+body), k, Limits{}, time.Now())
		if res.Decryption == vocab.DecOK || res.Signature == vocab.SigGood {
			t.Fatalf("garbage accepted: %+v", res)
		}
	}
	res := Unwrap([]byte("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\n\n--x\n\nVersion: 1\n--x\n\ngarbage\n--x--\n"), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecCannotDecrypt {
		t.Fatalf("%+v", res)
	}
}

func FuzzUnwrap(f *testing.F) {
	files, _ := filepath.Glob("../testdata/corpus/messages/*.eml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 32<<10 {
			f.Add(b)
		}
	}
	k := loadCorpusKeys(f)
	// S/MIME seeds made by OpenSSL (testdata/smime/make.sh), read with
	// the team's S/MIME certificate.
	seeds, _ := filepath.Glob("testdata/smime/*.eml")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	cert, _ := os.ReadFile("testdata/smime/team.pem")
	key, _ := os.ReadFile("testdata/smime/team.key")
	anchors, _ := os.ReadFile("testdata/smime/ca.pem")
	if s, err := LoadSMIME(cert, key, nil, anchors); err == nil {
		k.SMIME = s
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res := Unwrap(raw, k, Limits{MaxDecompressed: 1 << 20}, time.Now())
		if res.Cleartext == nil && len(raw) > 0 {
			t.Fatal("nil cleartext")
		}
	})
}

// gpg makes messages; madoguchi reads them. Both ways of interoperation
// with the real GnuPG (the other way is in sign_test.go).
func TestGnuPGInterop(t *testing.T) {
	gpg := testenv.NewGPG(t).Must
	gpg(nil, "--quick-gen-key", "Tester <tester@reporter.example>", "ed25519", "sign", "1y")
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	gpg(teamPub, "--import")
	testerPub := gpg(nil, "--armor", "--export", "tester@reporter.example")
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-protected.asc")
	k, err := LoadKeys([][]byte{team}, []byte("corpus-team-passphrase"), testerPub)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("Phishing at http://evil.example/ reported.\n")
	enc := gpg(plain, "--armor", "--trust-model", "always", "--sign", "--local-user", "tester@reporter.example", "--encrypt", "--recipient", "csirt@example.org")
	msg := "From: tester@reporter.example\nSubject: test\nContent-Type: text/plain\n\n" + string(enc)
	res := Unwrap([]byte(msg), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecOK || res.Signature != vocab.SigGood || !bytes.Contains(res.Cleartext, plain) || !res.SignerHasAddress("tester@reporter.example") {
		t.Fatalf("gpg sign+encrypt: %+v", res)
	}
	clear := gpg(plain, "--clearsign", "--local-user", "tester@reporter.example")
	res = Unwrap([]byte("From: x@y.example\nContent-Type: text/plain\n\n"+string(clear)), k, Limits{}, time.Now())
	if res.Signature != vocab.SigGood || res.SignerHasAddress("x@y.example") {
		t.Fatalf("gpg clearsign: %+v", res)
	}
	tampered := bytes.Replace(clear, []byte("evil"), []byte("good"), 1)
	res = Unwrap([]byte("From: x@y.example\nContent-Type: text/plain\n\n"+string(tampered)), k, Limits{}, time.Now())
	if res.Signature != vocab.SigBad {
		t.Fatalf("tampered clearsign: %+v", res)
	}
}

// TestInlineAttachmentsAndMemoryHole: OpenPGP below a plain multipart
// (an armored .asc attachment, a binary .pgp attachment, an armored text
// part) is decrypted in place; an Enigmail-style "Memory Hole" encrypted
// subject replaces the "..." outside. All made by the real gpg.
func TestInlineAttachmentsAndMemoryHole(t *testing.T) {
	gpg := testenv.NewGPG(t).Must
	gpg(nil, "--quick-gen-key", "Tester <tester@reporter.example>", "ed25519", "sign", "1y")
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	gpg(teamPub, "--import")
	testerPub := gpg(nil, "--armor", "--export", "tester@reporter.example")
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, testerPub)
	if err != nil {
		t.Fatal(err)
	}
	ascAttachment := gpg([]byte("auth.log: Failed password for root from 203.0.113.9\n"), "--armor", "--encrypt", "--sign", "--local-user", "tester@reporter.example", "--recipient", "csirt@example.org")
	binary := []byte("MZ\x00\x01binary sample\x00\xff")
	pgpAttachment := base64.StdEncoding.EncodeToString(gpg(binary, "--encrypt", "--recipient", "csirt@example.org"))
	msg := "From: tester@reporter.example\r\nSubject: evidence\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLogs attached, encrypted.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"auth.log.asc\"\r\nContent-Disposition: attachment; filename=\"auth.log.asc\"\r\n\r\n" + string(ascAttachment) + "\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"sample.bin.pgp\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"sample.bin.pgp\"\r\n\r\n" + pgpAttachment + "\r\n" +
		"--b1--\r\n"
	res := Unwrap([]byte(msg), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecOK || res.Signature != vocab.SigGood || !res.SignerHasAddress("tester@reporter.example") {
		t.Fatalf("attachments: %s %s %s", res.Decryption, res.Signature, res.DecryptionDetail)
	}
	if !bytes.Contains(res.Cleartext, []byte("Failed password for root from 203.0.113.9")) || !bytes.Contains(res.Cleartext, []byte(`filename="auth.log"`)) {
		t.Fatalf("the .asc attachment is not decrypted in place:\n%s", res.Cleartext)
	}
	if !bytes.Contains(res.Cleartext, []byte(`filename="sample.bin"`)) || !bytes.Contains(res.Cleartext, []byte(base64.StdEncoding.EncodeToString(binary))) {
		t.Fatalf("the .pgp attachment is not decrypted in place:\n%s", res.Cleartext)
	}
	if !bytes.Contains(res.Cleartext, []byte("Logs attached, encrypted.")) {
		t.Fatal("the plain part was lost")
	}

	// Memory Hole: the real subject travels in a text/rfc822-headers part.
	inner := "Content-Type: multipart/mixed; boundary=\"mh\"\r\n\r\n" +
		"--mh\r\nContent-Type: text/rfc822-headers; protected-headers=\"v1\"\r\nContent-Disposition: inline\r\n\r\nSubject: =?UTF-8?B?5LiN5q2j44Ki44Kv44K744K5?= on gw-01\r\n\r\n" +
		"--mh\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSomeone logged in to gw-01 from 198.51.100.23.\r\n--mh--\r\n"
	enc := gpg([]byte(inner), "--armor", "--encrypt", "--sign", "--local-user", "tester@reporter.example", "--recipient", "csirt@example.org")
	outer := "From: tester@reporter.example\r\nSubject: ...\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"e\"\r\n\r\n" +
		"--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n" + string(enc) + "\r\n--e--\r\n"
	res = Unwrap([]byte(outer), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecOK || res.ProtectedSubject != "不正アクセス on gw-01" {
		t.Fatalf("memory hole: %s %q", res.Decryption, res.ProtectedSubject)
	}
}
