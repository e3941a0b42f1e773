package parse

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/unicode/utf32"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

// aliases covers names real mailers write that the WHATWG index lacks.
var aliases = map[string]encoding.Encoding{
	"cp932":          japanese.ShiftJIS,
	"ms932":          japanese.ShiftJIS,
	"windows-31j":    japanese.ShiftJIS,
	"x-sjis":         japanese.ShiftJIS,
	"sjis":           japanese.ShiftJIS,
	"shift-jis":      japanese.ShiftJIS,
	"x-ms-cp932":     japanese.ShiftJIS,
	"iso-2022-jp-ms": japanese.ISO2022JP,
	"iso-2022-jp-1":  japanese.ISO2022JP,
	"iso-2022-jp-2":  japanese.ISO2022JP,
	"iso-2022-jp-3":  japanese.ISO2022JP,
	"cp50220":        japanese.ISO2022JP,
	"cp50221":        japanese.ISO2022JP,
	"cp50222":        japanese.ISO2022JP,
	"x-euc-jp":       japanese.EUCJP,
	"eucjp":          japanese.EUCJP,
	"cp51932":        japanese.EUCJP,
	"utf-32":         utf32.UTF32(utf32.BigEndian, utf32.UseBOM),
}

// lookupCharset finds a decoder for a charset label.
func lookupCharset(name string) (encoding.Encoding, bool) {
	n := strings.ToLower(strings.Trim(strings.TrimSpace(name), `"'`))
	if e, ok := aliases[n]; ok {
		return e, true
	}
	if n == "utf-8" || n == "utf8" || n == "us-ascii" || n == "ascii" || n == "" {
		return nil, true
	}
	e, err := htmlindex.Get(n)
	if err != nil {
		return nil, false
	}
	return e, true
}

// decodeCharset turns b in charset cs into UTF-8. Nothing is dropped:
// undecodable bytes become U+FFFD and the returned warning says so. An
// empty or unknown label is detected from the bytes.
func decodeCharset(b []byte, cs string) (text, used, warning string) {
	label := strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
	enc, known := lookupCharset(label)
	if !known {
		det := detectCharset(b)
		t, _, _ := decodeCharset(b, det)
		return t, label, "unknown charset " + rawmime.Clip(label, 40) + "; decoded as " + det
	}
	if enc == nil { // UTF-8 or ASCII
		if label == "" {
			label = "us-ascii"
		}
		if utf8.Valid(b) {
			if label == "us-ascii" && !isASCII(b) {
				if label != "" && cs != "" {
					return string(b), "utf-8", "8-bit text declared us-ascii; it is UTF-8"
				}
				return string(b), "utf-8", ""
			}
			return string(b), label, ""
		}
		if label == "us-ascii" || cs == "" {
			det := detectCharset(b)
			t, _, _ := decodeCharset(b, det)
			return t, det, "undeclared 8-bit text; detected " + det
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), label, "invalid UTF-8 replaced with U+FFFD"
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD"), label, "cannot decode as " + label
	}
	w := ""
	if bytes.Count(out, []byte("\uFFFD")) > bytes.Count(b, []byte("\uFFFD")) {
		w = "undecodable bytes in " + label + " replaced with U+FFFD"
	}
	return string(out), label, w
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// detectCharset guesses the charset of undeclared bytes: UTF-8 when valid,
// ISO-2022-JP when it carries its escapes, Shift_JIS or EUC-JP when decoding
// as one of them yields kana, else windows-1252.
func detectCharset(b []byte) string {
	if isASCII(b) {
		if bytes.Contains(b, []byte("\x1b$B")) || bytes.Contains(b, []byte("\x1b$@")) {
			return "iso-2022-jp"
		}
		return "us-ascii"
	}
	if utf8.Valid(b) {
		return "utf-8"
	}
	best, bestScore := "windows-1252", 0
	for _, c := range []struct {
		name string
		enc  encoding.Encoding
	}{{"shift_jis", japanese.ShiftJIS}, {"euc-jp", japanese.EUCJP}} {
		out, err := c.enc.NewDecoder().Bytes(b)
		if err != nil {
			continue
		}
		kana, bad := 0, 0
		for _, r := range string(out) {
			if unicode.In(r, unicode.Hiragana, unicode.Katakana) {
				kana++
			}
			if r == utf8.RuneError {
				bad++
			}
		}
		if score := kana - 4*bad; kana > 0 && score > bestScore {
			best, bestScore = c.name, score
		}
	}
	return best
}

var encodedWordRE = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=`)

// decodeHeader decodes RFC 2047 encoded words, forgiving the ways
// Japanese mailers break them: a character split across two words of the
// same charset (bytes are joined before decoding), words inside quoted
// strings, and raw 8-bit bytes outside words (detected).
func decodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		if utf8.ValidString(v) {
			return v
		}
		t, _, _ := decodeCharset([]byte(v), "")
		return t
	}
	var out strings.Builder
	var pending []byte
	pendingCS := ""
	carry := "" // base64 text of words split mid-quantum
	flush := func() {
		if carry != "" {
			b, _ := rawmime.DecodeBase64([]byte(carry), 1<<20)
			pending = append(pending, b...)
			carry = ""
		}
		if pendingCS != "" {
			label := pendingCS
			if i := strings.IndexByte(label, '*'); i >= 0 { // RFC 2231 language
				label = label[:i]
			}
			t, _, _ := decodeCharset(pending, label)
			out.WriteString(t)
		}
		pending, pendingCS = nil, ""
	}
	last := 0
	for _, m := range encodedWordRE.FindAllStringSubmatchIndex(v, -1) {
		between := v[last:m[0]]
		if strings.TrimSpace(between) != "" || pendingCS == "" {
			flush()
			out.WriteString(plainHeaderText(between))
		}
		cs := strings.ToLower(v[m[2]:m[3]])
		enc := v[m[4]:m[5]]
		data := v[m[6]:m[7]]
		if pendingCS != "" && pendingCS != cs {
			flush()
		}
		pendingCS = cs
		if enc == "b" || enc == "B" {
			if carry != "" || len(data)%4 != 0 {
				carry += strings.TrimRight(data, "=")
				if len(carry)%4 == 0 {
					b, _ := rawmime.DecodeBase64([]byte(carry), 1<<20)
					pending = append(pending, b...)
					carry = ""
				}
			} else {
				b, _ := rawmime.DecodeBase64([]byte(data), 1<<20)
				pending = append(pending, b...)
			}
		} else {
			b, _ := rawmime.DecodeQP([]byte(strings.ReplaceAll(data, "_", " ")), 1<<20)
			pending = append(pending, b...)
		}
		last = m[1]
	}
	flush()
	out.WriteString(plainHeaderText(v[last:]))
	return out.String()
}

func plainHeaderText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	t, _, _ := decodeCharset([]byte(s), "")
	return t
}

// b64 is used by tests and structured formats.
var b64 = base64.StdEncoding

// DecodeHeader decodes RFC 2047 encoded words leniently (exported for crypto).
func DecodeHeader(v string) string { return decodeHeader(v) }
