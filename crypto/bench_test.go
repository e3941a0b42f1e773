package crypto

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

// Decrypt+verify of a 4 KiB report, in process, beside `gpg --decrypt` run
// as a subprocess per message (how RT's mail gateway does it). Figures in
// docs/benchmarks.md:
//
//	go test -run '^$' -bench 'Unwrap|GnuPG' -benchtime 2s ./crypto

type benchKeys struct {
	home string
	keys *Keys
	msg  []byte // a PGP/MIME message, signed and encrypted by the sender
	enc  []byte // its armored OpenPGP part, what gpg is given
}

var (
	benchOnce sync.Map // algo → *benchKeys
)

func benchSetup(b *testing.B, algo string) *benchKeys {
	b.Helper()
	if v, ok := benchOnce.Load(algo); ok {
		return v.(*benchKeys)
	}
	if _, err := exec.LookPath("gpg"); err != nil {
		b.Skip("gpg not installed")
	}
	home, err := os.MkdirTemp("", "madoguchi-bench-gpg-")
	if err != nil {
		b.Fatal(err)
	}
	gpg := func(stdin []byte, args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--yes", "--trust-model", "always", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
		}
		return out.Bytes()
	}
	primary, sub := map[string][2]string{"cv25519": {"ed25519", "cv25519"}, "rsa3072": {"rsa3072", "rsa3072"}, "rsa4096": {"rsa4096", "rsa4096"}}[algo][0],
		map[string][2]string{"cv25519": {"ed25519", "cv25519"}, "rsa3072": {"rsa3072", "rsa3072"}, "rsa4096": {"rsa4096", "rsa4096"}}[algo][1]
	gpg(nil, "--quick-gen-key", "Team <team@csirt.example>", primary, "sign,cert", "1y")
	fpr := ""
	for _, l := range strings.Split(string(gpg(nil, "--with-colons", "--list-keys", "team@csirt.example")), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fpr = strings.Split(l, ":")[9]
			break
		}
	}
	gpg(nil, "--quick-add-key", fpr, sub, "encr", "1y")
	gpg(nil, "--quick-gen-key", "Sender <sender@partner.example>", "ed25519", "sign", "1y")
	teamSec := gpg(nil, "--armor", "--export-secret-keys", "team@csirt.example")
	senderPub := gpg(nil, "--armor", "--export", "sender@partner.example")
	k, err := LoadKeys([][]byte{teamSec}, nil, senderPub)
	if err != nil {
		b.Fatal(err)
	}
	report := bytes.Repeat([]byte("Scanning from 198.51.100.7 against our hosts, see the logs below.\n"), 4096/66)
	enc := gpg(report, "--armor", "--sign", "--local-user", "sender@partner.example", "--encrypt", "--recipient", "team@csirt.example")
	msg := []byte("From: sender@partner.example\r\nSubject: ...\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"e\"\r\n\r\n" +
		"--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n" + string(enc) + "\r\n--e--\r\n")
	if res := Unwrap(msg, k, Limits{}, time.Now()); res.Decryption != vocab.DecOK || res.Signature != vocab.SigGood {
		b.Fatalf("setup: %s %s %s", res.Decryption, res.Signature, res.DecryptionDetail)
	}
	bk := &benchKeys{home: home, keys: k, msg: msg, enc: enc}
	benchOnce.Store(algo, bk)
	return bk
}

// TestMain removes the GnuPG homes the benchmarks made, and stops their
// agents, once every test and benchmark has run.
func TestMain(m *testing.M) {
	code := m.Run()
	benchOnce.Range(func(_, v any) bool {
		home := v.(*benchKeys).home
		testenv.KillGPGAgent(home)
		_ = os.RemoveAll(home)
		return true
	})
	os.Exit(code)
}

func BenchmarkUnwrap(b *testing.B) {
	for _, algo := range []string{"cv25519", "rsa3072", "rsa4096"} {
		b.Run(algo, func(b *testing.B) {
			bk := benchSetup(b, algo)
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if res := Unwrap(bk.msg, bk.keys, Limits{}, now); res.Signature != vocab.SigGood {
					b.Fatal(res.Signature)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkGnuPGSubprocess(b *testing.B) {
	for _, algo := range []string{"cv25519", "rsa3072", "rsa4096"} {
		b.Run(algo, func(b *testing.B) {
			bk := benchSetup(b, algo)
			b.ResetTimer()
			for range b.N {
				cmd := exec.Command("gpg", "--homedir", bk.home, "--batch", "--yes", "--trust-model", "always", "--pinentry-mode", "loopback", "--passphrase", "", "--decrypt")
				cmd.Stdin = bytes.NewReader(bk.enc)
				var errb bytes.Buffer
				cmd.Stderr = &errb
				if err := cmd.Run(); err != nil || !strings.Contains(errb.String(), "Good signature") {
					b.Fatalf("gpg: %v %s", err, errb.String())
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
