package hashed

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// File is a parsed hash file.
type File struct {
	names  []string
	hashes map[string]string
	ids    map[string]idLine // token identifier -> its line (slow-hash token lines)
	sha    map[string]string // hex SHA-256 -> name (sha256: lines)
	mu     sync.Mutex
	known  map[[32]byte]string // secrets already matched by a slow hash
}

// idLine is a slow-hash token line found by its identifier.
type idLine struct{ name, hash string }

// minIDLen is the shortest token identifier.
const minIDLen = 6

// Parse reads a hash file's content. SHA-256 lines are accepted only when
// allowSHA256 is set: a plain hash is fit for long random tokens, not for
// passwords people chose.
func Parse(b []byte, allowSHA256 bool) (*File, error) {
	f := &File{hashes: map[string]string{}, ids: map[string]idLine{}, sha: map[string]string{}, known: map[[32]byte]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		slow := len(fs) >= 2 && !strings.HasPrefix(fs[1], "sha256:")
		switch {
		case allowSHA256 && slow && len(fs) == 2:
			return nil, fmt.Errorf("line %d: a bcrypt or argon2id token needs its identifier (its first %d or more characters) as a third field", n, minIDLen)
		case allowSHA256 && slow && len(fs) == 3:
			if len(fs[2]) < minIDLen {
				return nil, fmt.Errorf("line %d: a token identifier has at least %d characters", n, minIDLen)
			}
			for id := range f.ids {
				if strings.HasPrefix(id, fs[2]) || strings.HasPrefix(fs[2], id) {
					return nil, fmt.Errorf("line %d: token identifier %s overlaps another line's", n, fs[2])
				}
			}
			f.ids[fs[2]] = idLine{fs[0], fs[1]}
		case len(fs) != 2:
			return nil, fmt.Errorf("line %d: want NAME HASH", n)
		}
		h := fs[1]
		switch {
		case strings.HasPrefix(h, "$2"):
			if _, err := bcrypt.Cost([]byte(h)); err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
		case strings.HasPrefix(h, "$argon2id$"):
			if _, _, _, err := parseArgon2(h); err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
		case strings.HasPrefix(h, "sha256:") && allowSHA256:
			d, err := hex.DecodeString(strings.TrimPrefix(h, "sha256:"))
			if err != nil || len(d) != 32 {
				return nil, fmt.Errorf("line %d: sha256: want 64 hex digits", n)
			}
			f.sha[hex.EncodeToString(d)] = fs[0]
		default:
			kinds := "bcrypt ($2...) or argon2id ($argon2id$...)"
			if allowSHA256 {
				kinds = "sha256:HEX, " + kinds
			}
			return nil, fmt.Errorf("line %d: hash must be %s", n, kinds)
		}
		if _, dup := f.hashes[fs[0]]; !dup {
			f.names = append(f.names, fs[0])
		}
		f.hashes[fs[0]] = h
	}
	return f, sc.Err()
}

type argon2Params struct {
	m, t uint32
	p    uint8
}

func parseArgon2(h string) (argon2Params, []byte, []byte, error) {
	var ps argon2Params
	parts := strings.Split(h, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, hash
	if len(parts) != 6 || parts[2] != "v=19" {
		return ps, nil, nil, errors.New("argon2id: want $argon2id$v=19$m=M,t=T,p=P$SALT$HASH")
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return ps, nil, nil, fmt.Errorf("argon2id: %s", kv)
		}
		switch k {
		case "m":
			ps.m = uint32(n)
		case "t":
			ps.t = uint32(n)
		case "p":
			ps.p = uint8(n)
		}
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	sum, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || ps.t == 0 || ps.m == 0 || ps.p == 0 || len(sum) == 0 {
		return ps, nil, nil, errors.New("argon2id: bad parameters, salt or hash")
	}
	return ps, salt, sum, nil
}

// matches reports whether secret hashes to h.
func matches(h, secret string) bool {
	switch {
	case strings.HasPrefix(h, "sha256:"):
		want, _ := hex.DecodeString(strings.TrimPrefix(h, "sha256:"))
		got := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(want, got[:]) == 1
	case strings.HasPrefix(h, "$2"):
		return bcrypt.CompareHashAndPassword([]byte(h), []byte(secret)) == nil
	case strings.HasPrefix(h, "$argon2id$"):
		ps, salt, sum, err := parseArgon2(h)
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(secret), salt, ps.t, ps.m, ps.p, uint32(len(sum)))
		return subtle.ConstantTimeCompare(got, sum) == 1
	}
	return false
}

// dummyHash is checked for unknown names, so that a timing difference
// does not tell which names exist.
const dummyHash = "$2a$10$abcdefghijklmnopqrstuu0123456789012345678901234567890"

// Check reports whether secret is name's. (Credentials: name and password.)
func (f *File) Check(name, secret string) bool {
	if f == nil || len(secret) > 1024 {
		return false
	}
	h, ok := f.hashes[name]
	if !ok {
		_ = matches(dummyHash, secret)
		return false
	}
	return matches(h, secret)
}

// Owner returns the name whose hash secret matches, or "". (Tokens: the
// secret alone says who it is.) It costs one hash, right or wrong: the
// secret's SHA-256 is looked up among the sha256: lines, and a slow hash
// is checked only on the line whose identifier starts the secret. A
// match by a slow hash is remembered by the secret's SHA-256, so a token
// is not bcrypt-checked on every request.
func (f *File) Owner(secret string) string {
	if f == nil || secret == "" || len(secret) > 1024 {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	f.mu.Lock()
	name, ok := f.known[sum]
	f.mu.Unlock()
	if ok {
		return name
	}
	if n, ok := f.sha[hex.EncodeToString(sum[:])]; ok {
		return n
	}
	for id, l := range f.ids {
		if strings.HasPrefix(secret, id) {
			if !matches(l.hash, secret) {
				return ""
			}
			f.mu.Lock()
			f.known[sum] = l.name
			f.mu.Unlock()
			return l.name
		}
	}
	return ""
}

// OwnerLine is Owner and the line that matched, named so that LineOwner
// finds it again in this file or a later one: "sha256:HEX" for a SHA-256
// line, "id:IDENTIFIER" for a slow-hash token line.
func (f *File) OwnerLine(secret string) (name, line string) {
	name = f.Owner(secret)
	if name == "" {
		return "", ""
	}
	sum := sha256.Sum256([]byte(secret))
	if h := hex.EncodeToString(sum[:]); f.sha[h] == name {
		return name, "sha256:" + h
	}
	for id, l := range f.ids {
		if strings.HasPrefix(secret, id) && l.name == name {
			return name, "id:" + id
		}
	}
	return "", ""
}

// LineOwner is the name on a line OwnerLine named, or "" when the file
// has no such line any more (the token was revoked).
func (f *File) LineOwner(line string) string {
	if f == nil {
		return ""
	}
	if h, ok := strings.CutPrefix(line, "sha256:"); ok {
		return f.sha[h]
	}
	if id, ok := strings.CutPrefix(line, "id:"); ok {
		return f.ids[id].name
	}
	return ""
}

// NewArgon2id returns the argon2id PHC string of secret with a random salt
// (t=3, m=64 MiB, p=4: the RFC 9106 second recommended option, reduced in
// memory), for writing credentials files.
func NewArgon2id(secret string) string {
	return newArgon2id(secret, 3, 64*1024, 4)
}

func newArgon2id(secret string, t, m uint32, p uint8) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	sum := argon2.IDKey([]byte(secret), salt, t, m, p, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}
