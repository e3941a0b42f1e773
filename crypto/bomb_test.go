package crypto

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/internal/vocab"
)

// TestEveryCompressionBombRefused: a compression bomb is "refused" with a
// detail naming the size limit, whatever the algorithm (GnuPG makes each:
// 200 MB of zeros, encrypted to the team key); an analyst must not read
// one as tampering ("integrity check failed").
func TestEveryCompressionBombRefused(t *testing.T) {
	g := testenv.NewGPG(t)
	pub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	g.Must(pub, "--import")
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	k, err := LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, algo := range []string{"bzip2", "zlib", "zip"} {
		cmd := exec.Command("sh", "-c", `head -c 200000000 /dev/zero | gpg --homedir "$1" --batch --trust-model always --compress-algo "$2" -z 9 --armor --encrypt -r csirt@example.org`, "sh", g.Home, algo)
		armored, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: gpg: %v", algo, err)
		}
		raw := "From: p@partner.example\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n" + string(armored)
		res := Unwrap([]byte(raw), k, Limits{MaxDecompressed: 8 << 20}, time.Now())
		if res.Decryption != vocab.DecRefused || !strings.Contains(res.DecryptionDetail, "limit") {
			t.Errorf("%s bomb: %s (%s), want refused naming the limit", algo, res.Decryption, res.DecryptionDetail)
		}
	}
}
