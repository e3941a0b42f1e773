package crypto

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

// TestBadInputVerdicts: damaged and hostile OpenPGP made from real gpg
// output gets a clear verdict, never a panic, and never the cleartext of a
// message whose integrity check failed.
func TestBadInputVerdicts(t *testing.T) {
	gpg := testenv.NewGPG(t).Must
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	gpg(teamPub, "--import")
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := "SECRET-EVIDENCE-7f3a"
	armored := gpg([]byte(secret+"\n"), "--armor", "--encrypt", "--recipient", "csirt@example.org")
	binary := gpg([]byte(secret+"\n"), "--encrypt", "--recipient", "csirt@example.org")
	wrap := func(body []byte) []byte {
		return []byte("From: x@y.example\r\nSubject: t\r\nContent-Type: text/plain\r\n\r\n" + string(body))
	}
	// Flip one byte deep in the encrypted data (past the session key packet):
	// the MDC/AEAD check must fail and no cleartext come out.
	tampered := append([]byte{}, binary...)
	tampered[len(tampered)-10] ^= 0x40
	tamperedArmor := "-----BEGIN PGP MESSAGE-----\n\n" + base64.StdEncoding.EncodeToString(tampered) + "\n-----END PGP MESSAGE-----\n"
	lines := strings.Split(string(armored), "\n")
	badCRC := strings.Builder{}
	for _, l := range lines {
		if strings.HasPrefix(l, "=") && len(l) == 5 {
			l = "=AAAA"
		}
		badCRC.WriteString(l + "\n")
	}
	// A second key that can only sign: a message to it cannot be decrypted
	// by the team either.
	gpg(nil, "--quick-gen-key", "Other <other@x.example>", "ed25519", "sign,cert", "1y")
	fpr := ""
	for _, l := range strings.Split(string(gpg(nil, "--with-colons", "--list-keys", "other@x.example")), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fpr = strings.Split(l, ":")[9]
			break
		}
	}
	gpg(nil, "--quick-add-key", fpr, "cv25519", "encr", "1y")
	toOther := gpg([]byte(secret+"\n"), "--armor", "--encrypt", "--recipient", "other@x.example")

	cases := []struct {
		name string
		msg  []byte
		want vocab.DecStatus
	}{
		{"truncated armour", wrap(armored[:len(armored)/2]), vocab.DecCannotDecrypt},
		{"garbage inside armour", wrap([]byte("-----BEGIN PGP MESSAGE-----\n\nbm90IGEgcGFja2V0IGF0IGFsbA==\n-----END PGP MESSAGE-----\n")), vocab.DecCannotDecrypt},
		{"integrity check fails", wrap([]byte(tamperedArmor)), vocab.DecCannotDecrypt},
		{"encrypted to a key we do not hold", wrap(toOther), vocab.DecCannotDecrypt},
		{"wrong armour checksum", wrap([]byte(badCRC.String())), ""}, // either verdict, but clear and no panic
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := Unwrap(c.msg, k, Limits{}, time.Now())
			if c.want != "" && res.Decryption != c.want {
				t.Fatalf("decryption %s (%s), want %s", res.Decryption, res.DecryptionDetail, c.want)
			}
			if res.Decryption == vocab.DecCannotDecrypt && bytes.Contains(res.Cleartext, []byte(secret)) {
				t.Fatal("cleartext given out for a message that did not decrypt cleanly")
			}
			if res.Decryption != vocab.DecOK && res.DecryptionDetail == "" {
				t.Fatal("a failed verdict without a reason")
			}
		})
	}
	// A team key that cannot decrypt at all (sign-only) is a clear verdict.
	signOnlyHome := t.TempDir()
	cmd := exec.Command("gpg", "--homedir", signOnlyHome, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "Team <csirt@example.org>", "ed25519", "sign", "1y")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	sec, err := exec.Command("gpg", "--homedir", signOnlyHome, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys").Output()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeys([][]byte{sec}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := Unwrap(wrap(armored), k2, Limits{}, time.Now()); res.Decryption != vocab.DecCannotDecrypt || bytes.Contains(res.Cleartext, []byte(secret)) {
		t.Fatalf("sign-only team key: %s", res.Decryption)
	}
}

// TestTwoHundredRecipients: a message encrypted to 200 keys besides ours
// is decrypted (the team's session key packet is found among them) in
// bounded time.
func TestTwoHundredRecipients(t *testing.T) {
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	var to openpgp.EntityList
	for i := 0; i < 200; i++ {
		e, err := openpgp.NewEntity("r", "", fmt.Sprintf("r%d@x.example", i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		to = append(to, e)
	}
	to = append(to, k.Team[0])
	var enc bytes.Buffer
	w, err := armor.Encode(&enc, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := openpgp.Encrypt(w, to, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write([]byte("for all of you\n"))
	_ = pw.Close()
	_ = w.Close()
	start := time.Now()
	res := Unwrap([]byte("From: x@y.example\r\nContent-Type: text/plain\r\n\r\n"+enc.String()), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecOK || !bytes.Contains(res.Cleartext, []byte("for all of you")) {
		t.Fatalf("%s %s", res.Decryption, res.DecryptionDetail)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestV6TeamKey: a version 6 key (RFC 9580; go-crypto makes them, GnuPG
// 2.2 cannot) works as a team key: armored, loaded, decrypts and verifies a
// message signed by a v6 correspondent, and signs our outgoing mail.
func TestV6TeamKey(t *testing.T) {
	cfg := &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519}
	team, err := openpgp.NewEntity("Team", "", "csirt@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := openpgp.NewEntity("Partner", "", "cert@partner.example", cfg)
	if err != nil {
		t.Fatal(err)
	}
	armorOf := func(e *openpgp.Entity, secret bool) []byte {
		var b bytes.Buffer
		typ := openpgp.PublicKeyType
		if secret {
			typ = openpgp.PrivateKeyType
		}
		w, _ := armor.Encode(&b, typ, nil)
		if secret {
			if err := e.SerializePrivate(w, nil); err != nil {
				t.Fatal(err)
			}
		} else if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
		_ = w.Close()
		return b.Bytes()
	}
	k, err := LoadKeys([][]byte{armorOf(team, true)}, nil, armorOf(partner, false))
	if err != nil {
		t.Fatalf("loading a v6 team key: %v", err)
	}
	if k.Team[0].PrimaryKey.Version != 6 {
		t.Fatalf("version %d", k.Team[0].PrimaryKey.Version)
	}
	var enc bytes.Buffer
	w, _ := armor.Encode(&enc, "PGP MESSAGE", nil)
	pw, err := openpgp.Encrypt(w, openpgp.EntityList{team}, partner, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write([]byte("v6 report body\n"))
	_ = pw.Close()
	_ = w.Close()
	res := Unwrap([]byte("From: cert@partner.example\r\nContent-Type: text/plain\r\n\r\n"+enc.String()), k, Limits{}, time.Now())
	if res.Decryption != vocab.DecOK || res.Signature != vocab.SigGood || !res.SignerHasAddress("cert@partner.example") {
		t.Fatalf("v6: %s %s (%s %s)", res.Decryption, res.Signature, res.DecryptionDetail, res.SignatureDetail)
	}
	ct, body, err := k.SignMIME(Part("Content-Type: text/plain\r\n\r\nack\r\n"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	back := Unwrap([]byte("From: csirt@example.org\r\nContent-Type: "+ct+"\r\n\r\n"+string(body)), k, Limits{}, time.Now())
	if back.Signature != vocab.SigGood {
		t.Fatalf("our v6 signature: %s %s", back.Signature, back.SignatureDetail)
	}
}

// TestExpiredTeamKey: mail encrypted to a team key that has since expired
// gets a clear verdict (decrypted, since old mail to a rotated-out key must
// stay readable, or refused with a reason), never a panic; the expiry is
// reported by TeamKeys so that monitoring can warn before it.
func TestExpiredTeamKey(t *testing.T) {
	then := time.Now().Add(-48 * time.Hour)
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return then }, KeyLifetimeSecs: 24 * 3600}
	team, err := openpgp.NewEntity("Team", "", "csirt@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sec bytes.Buffer
	w, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	_ = team.SerializePrivate(w, nil)
	_ = w.Close()
	k, err := LoadKeys([][]byte{sec.Bytes()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exp := k.TeamKeys()[0].Expires; exp.IsZero() || exp.After(time.Now()) {
		t.Fatalf("expiry %v not reported as past", exp)
	}
	var enc bytes.Buffer
	aw, _ := armor.Encode(&enc, "PGP MESSAGE", nil)
	pw, err := openpgp.Encrypt(aw, openpgp.EntityList{team}, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write([]byte("sent while the key was valid\n"))
	_ = pw.Close()
	_ = aw.Close()
	res := Unwrap([]byte("From: x@y.example\r\nContent-Type: text/plain\r\n\r\n"+enc.String()), k, Limits{}, time.Now())
	switch res.Decryption {
	case vocab.DecOK:
		if !bytes.Contains(res.Cleartext, []byte("sent while the key was valid")) {
			t.Fatal("decrypted without the text")
		}
	case vocab.DecCannotDecrypt:
		if res.DecryptionDetail == "" {
			t.Fatal("refused without a reason")
		}
	default:
		t.Fatalf("verdict %s", res.Decryption)
	}
	t.Logf("expired team key: %s %s", res.Decryption, res.DecryptionDetail)
}

// TestUnknownAlgorithms: a session key packet for a public-key algorithm
// nobody knows, and a data packet of an unknown version, get a clear
// cannot-decrypt verdict with a reason.
func TestUnknownAlgorithms(t *testing.T) {
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt := func(tag byte, body []byte) []byte { // new-format packet, one-octet length
		return append([]byte{0xC0 | tag, byte(len(body))}, body...)
	}
	pkesk := pkt(1, append([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 99}, bytes.Repeat([]byte{0x42}, 20)...)) // algorithm 99
	seipd := pkt(18, append([]byte{7}, bytes.Repeat([]byte{0x17}, 40)...))                            // version 7
	for name, bin := range map[string][]byte{"unknown public-key algorithm": append(pkesk, seipd...), "unknown data version": seipd} {
		var b bytes.Buffer
		w, _ := armor.Encode(&b, "PGP MESSAGE", nil)
		_, _ = w.Write(bin)
		_ = w.Close()
		res := Unwrap([]byte("From: x@y.example\r\nContent-Type: text/plain\r\n\r\n"+b.String()), k, Limits{}, time.Now())
		if res.Decryption != vocab.DecCannotDecrypt || res.DecryptionDetail == "" {
			t.Errorf("%s: %s %q", name, res.Decryption, res.DecryptionDetail)
		}
	}
}
