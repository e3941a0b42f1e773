package parse

import (
	"bytes"
	"io"

	"github.com/emersion/go-message/textproto"

	"github.com/madoguchi/madoguchi/internal/rawmime"
)

// readHeader reads a header block within the parser's limits
// (rawmime.ReadHeader).
func (p *parser) readHeader(hb []byte, warn func(string)) rawmime.Header {
	return rawmime.ReadHeader(hb, p.opt.Limits.MaxHeaderBytes, warn)
}

// mimePart is one part of a multipart body: its header and raw body.
type mimePart struct {
	h    rawmime.Header
	body []byte
}

// multipartParts reads the parts of a multipart body with go-message's
// multipart reader, the one go-imap and the Go mail ecosystem share. That
// reader is strict: a header line without a colon, a stray line between
// parts or a missing close delimiter is an error, and reports arrive like
// that (corpus messages 27 and 28) with evidence that must still reach the
// analyst. Then, and when a part's header is over the limits, the body is
// read again by splitMultipart, the lenient reader, which takes what it
// can and says what it skipped.
func (p *parser) multipartParts(body []byte, boundary string, warn func(string)) ([]mimePart, bool) {
	if parts, ok := p.multipartStrict(body, boundary); ok {
		return parts, true
	}
	raw, closed := rawmime.SplitMultipart(body, boundary, p.opt.Limits.MaxParts)
	parts := make([]mimePart, len(raw))
	for i, part := range raw {
		ph, pb := rawmime.SplitMessage(part)
		parts[i] = mimePart{h: rawmime.ReadHeaderLenient(ph, p.opt.Limits.MaxHeaderBytes, warn), body: pb}
	}
	return parts, closed
}

// multipartStrict is multipartParts with go-message alone; ok is false
// when it cannot read the body to its close delimiter within the limits.
func (p *parser) multipartStrict(body []byte, boundary string) (parts []mimePart, ok bool) {
	defer func() {
		if recover() != nil { // a reader bug must not cost the report
			parts, ok = nil, false
		}
	}()
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	for len(parts) < p.opt.Limits.MaxParts {
		part, err := mr.NextPart()
		if err == io.EOF {
			return parts, true
		}
		if err != nil {
			return nil, false
		}
		h, ok := rawmime.FromTextproto(part.Header, p.opt.Limits.MaxHeaderBytes)
		if !ok {
			return nil, false
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, false
		}
		parts = append(parts, mimePart{h: h, body: b})
	}
	return parts, true // the part limit: entity says what it left out
}
