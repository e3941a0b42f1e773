package rawmime

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Field is one header field, unfolded, value still RFC 2047-encoded.
type Field struct{ Name, Value string }

// Header is a header block's fields, in order.
type Header []Field

// Get is the first value of the field name (any case), or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values are every value of the field name, in order.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Has tells whether the field name is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// SplitMessage separates the header block from the body. It accepts CRLF
// and bare LF, and a message that is all header or all body.
func SplitMessage(raw []byte) (hdr, body []byte) {
	if bytes.HasPrefix(raw, []byte("\n")) {
		return nil, raw[1:]
	}
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return nil, raw[2:]
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\n' {
			continue
		}
		j := i + 1
		if j < len(raw) && raw[j] == '\r' {
			j++
		}
		if j < len(raw) && raw[j] == '\n' {
			return raw[:i+1], raw[j+1:]
		}
		if j >= len(raw) {
			return raw, nil
		}
	}
	return raw, nil
}

// ReadHeaderLenient reads header fields leniently: continuation lines fold into
// the previous field, a line without a colon is skipped with a warning
// instead of ending the header (the fields after it are still real), and
// at most maxBytes of header are read.
func ReadHeaderLenient(b []byte, maxBytes int, warn func(string)) Header {
	if len(b) > maxBytes {
		warn("header larger than the limit; truncated")
		b = b[:maxBytes]
	}
	var h Header
	skipping := false // the last field line was skipped: so are its continuations
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && (len(h) > 0 || skipping) {
			if skipping {
				continue
			}
			// unfolded as go-message does: trimmed pieces, one space
			// between, blank continuation lines dropped
			if t := strings.Trim(line, " \t"); t != "" {
				if f := &h[len(h)-1]; f.Value == "" {
					f.Value = t
				} else {
					f.Value += " " + t
				}
			}
			continue
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 || strings.ContainsAny(line[:i], " \t") {
			skipping = true
			if strings.HasPrefix(line, "From ") && len(h) == 0 {
				continue // mbox separator
			}
			warn("malformed header line skipped: " + Clip(line, 60))
			continue
		}
		skipping = false
		if len(h) >= 2000 {
			warn("too many header fields; the rest ignored")
			break
		}
		h = append(h, Field{Name: line[:i], Value: strings.Trim(line[i+1:], " \t")})
	}
	return h
}

// ReadHeaderStrict is ReadHeader with go-message alone; ok is false when it
// refuses the block or the block is over the limits.
func ReadHeaderStrict(hb []byte, maxBytes int) (h Header, ok bool) {
	if len(hb) > maxBytes {
		return nil, false
	}
	defer func() {
		if recover() != nil { // a reader bug must not cost the report
			h, ok = nil, false
		}
	}()
	// The block as go-message expects it: every line ended, then the blank
	// line. (Without them it can drop an unended last line: at EOF right
	// after a line that filled its read buffer, found by FuzzHeaderStrict.)
	block := make([]byte, 0, len(hb)+4)
	block = append(block, hb...)
	if len(block) > 0 && block[len(block)-1] != '\n' {
		block = append(block, '\r', '\n')
	}
	block = append(block, '\r', '\n')
	th, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), 4096))
	if err != nil {
		return nil, false
	}
	return FromTextproto(th, maxBytes)
}

// FromTextproto is a go-message header as ours, in order; ok is false past
// the limits (maxBytes of fields, 2000 fields), where the lenient reader,
// which truncates and warns, takes over.
func FromTextproto(th textproto.Header, maxBytes int) (h Header, ok bool) {
	size := 0
	for f := th.Fields(); f.Next(); {
		h = append(h, Field{Name: f.Key(), Value: f.Value()})
		size += len(f.Key()) + len(f.Value()) + 4
		if size > maxBytes || len(h) > 2000 {
			return nil, false
		}
	}
	return h, true
}

// Clip shortens s to n bytes with an ellipsis (for warnings).
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var paramRE = regexp.MustCompile(`(?i)([a-z0-9_*.-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;\s]+)`)

// MediaType parses a Content-Type or Content-Disposition value. It tries
// the standard parser (RFC 2045 and RFC 2231 continuations) and falls back
// to a forgiving one.
func MediaType(v, def string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return def, map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(mt), params
	}
	parts := strings.SplitN(v, ";", 2)
	mt = strings.ToLower(strings.TrimSpace(parts[0]))
	if mt == "" || (!strings.Contains(mt, "/") && def != "") {
		if strings.Contains(def, "/") {
			mt = def
		}
	}
	params = map[string]string{}
	if len(parts) == 2 {
		for _, m := range paramRE.FindAllStringSubmatch(parts[1], -1) {
			val := m[2]
			if strings.HasPrefix(val, `"`) {
				val = m[3]
			}
			params[strings.ToLower(m[1])] = val
		}
	}
	return mt, params
}

// DecodeTransfer undoes Content-Transfer-Encoding, leniently: broken
// base64 keeps what decodes, broken quoted-printable keeps the bytes.
func DecodeTransfer(body []byte, cte string, limit int) ([]byte, bool) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return DecodeBase64(body, limit)
	case "quoted-printable":
		return DecodeQP(body, limit)
	}
	if len(body) > limit {
		return body[:limit], false
	}
	return body, true
}

// DecodeBase64 decodes base64 leniently (what decodes is kept), up to limit bytes.
func DecodeBase64(body []byte, limit int) ([]byte, bool) {
	clean := make([]byte, 0, len(body))
	ok := true
	for _, c := range body {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=', c == '\r', c == '\n', c == ' ', c == '\t':
		default:
			ok = false
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
		ok = false
	}
	if max := limit / 3 * 4; len(clean) > max {
		clean = clean[:max]
		ok = false
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		ok = false
	}
	return out[:n], ok
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// DecodeQP decodes quoted-printable leniently (broken escapes are kept), up to limit bytes.
func DecodeQP(body []byte, limit int) ([]byte, bool) {
	out := make([]byte, 0, len(body))
	ok := true
	for i := 0; i < len(body) && len(out) < limit; i++ {
		c := body[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		// soft line break: "=" then optional whitespace then (CR)LF
		j := i + 1
		for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
			j++
		}
		if j < len(body) && body[j] == '\r' {
			j++
		}
		if j < len(body) && body[j] == '\n' {
			i = j
			continue
		}
		if j >= len(body) {
			break
		}
		if i+2 < len(body) {
			h, ok1 := unhex(body[i+1])
			l, ok2 := unhex(body[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
		}
		ok = false
		out = append(out, c)
	}
	return out, ok
}

// SplitMultipart returns the parts between boundary delimiters. A missing
// close delimiter ends the last part at the end of the body.
func SplitMultipart(body []byte, boundary string, maxParts int) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	var start = -1
	pos := 0
	for pos <= len(body) {
		end := bytes.IndexByte(body[pos:], '\n')
		lineEnd := len(body)
		next := len(body) + 1
		if end >= 0 {
			lineEnd = pos + end
			next = lineEnd + 1
		}
		line := bytes.TrimRight(body[pos:lineEnd], " \t\r")
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			if len(rest) == 0 || bytes.Equal(rest, []byte("--")) {
				if start >= 0 {
					p := body[start:pos]
					p = bytes.TrimSuffix(p, []byte("\n"))
					p = bytes.TrimSuffix(p, []byte("\r"))
					parts = append(parts, p)
					if len(parts) >= maxParts {
						return parts, false
					}
				}
				if len(rest) == 2 {
					return parts, true
				}
				start = next
			}
		}
		pos = next
	}
	if start >= 0 && start <= len(body) {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// ReadHeader reads a header block with go-message's textproto.ReadHeader
// and, when that refuses it (a line without a colon, a field name with
// spaces or 8-bit bytes, an mbox "From " line, a header over the limit),
// with ReadHeaderLenient, which keeps the fields around the damage and
// tells warn what it skipped. Both unfold a field by trimming each line
// and joining them with one space. warn may be nil.
func ReadHeader(hb []byte, maxBytes int, warn func(string)) Header {
	if h, ok := ReadHeaderStrict(hb, maxBytes); ok {
		return h
	}
	if warn == nil {
		warn = func(string) {}
	}
	return ReadHeaderLenient(hb, maxBytes, warn)
}

// HeaderValue is the first value of the field name in a raw header block
// of up to 1 MiB, unfolded, or "".
func HeaderValue(hdr []byte, name string) string {
	return ReadHeader(hdr, 1<<20, nil).Get(name)
}

// Canonical turns line ends into CRLF, as RFC 3156 requires of a signed
// part (and as a verifier checks).
func Canonical(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// SplitFields splits a header block into whole fields as they are written
// (with their continuation lines), each ending in "\n": for rewriting a
// header without re-encoding the fields it keeps.
func SplitFields(hdr []byte) []string {
	var out []string
	for _, line := range strings.SplitAfter(strings.ReplaceAll(string(hdr), "\r\n", "\n"), "\n") {
		if line == "" || line == "\n" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		out = append(out, line)
	}
	return out
}

// Base64Lines is b in base64 as a MIME body wants it: lines of 76
// characters, each ending in eol.
func Base64Lines(b []byte, eol string) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76] + eol)
		enc = enc[76:]
	}
	out.WriteString(enc + eol)
	return out.Bytes()
}
