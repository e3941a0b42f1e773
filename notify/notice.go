package notify

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"mime/quotedprintable"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/rawmime"
	"github.com/madoguchi/madoguchi/store"
)

// csvAbove is how many indicators a notice lists in its text; beyond it
// they go in an attached CSV file (and the text says so).
const csvAbove = 20

// noticeData is what a notice template sees.
type noticeData struct {
	Team, Address string
	Constituent   string // its name
	ID            string // its id in the constituents file
	Tickets       []string
	TLP           string // "TLP:AMBER"
	Items         []noticeLine
	Count         int
	CSV           bool // the indicators are in the attached CSV, not in Items
	Encrypted     bool
}

// noticeLine is one indicator as a template shows it.
type noticeLine struct {
	Ticket, Kind, Value, What, ReportedAt string
	// Reporter is set only for TLP:CLEAR and TLP:GREEN reports; the
	// built-in templates never name it.
	Reporter string
}

// ContactKey, when a contact has a key file, returns its keys and true:
// notices to it are then encrypted, or not sent.
type ContactKey func(address string) (openpgp.EntityList, bool)

// renderNotice builds a notice to a constituent's contact: the team's
// text and only this constituent's indicators, signed, and encrypted to
// the contact's key file or, failing one, to the key the keyring has.
func (w *Writer) renderNotice(e store.OutboxEntry) ([]byte, error) {
	if err := w.checkRecipient(e.Recipient); err != nil {
		return nil, &PermanentError{err}
	}
	var p store.NoticePayload
	if err := json.Unmarshal([]byte(e.Payload), &p); err != nil {
		return nil, &PermanentError{fmt.Errorf("notice payload: %w", err)}
	}
	if len(p.Items) == 0 || len(p.Tickets) == 0 {
		return nil, &PermanentError{fmt.Errorf("notice %d names no indicators", e.ID)}
	}
	now := w.now()
	keys := w.Keys
	if w.KeySource != nil {
		keys = w.KeySource()
	}
	var to openpgp.EntityList
	required := false
	if w.ContactKeys != nil {
		to, required = w.ContactKeys(e.Recipient)
	}
	if !required {
		to = keys.KeyFor(e.Recipient, now)
	}
	if required && len(to) == 0 {
		// Retried: the operator may fix the key file and reload.
		return nil, fmt.Errorf("notice %d: the key file of %s holds no usable key", e.ID, e.Recipient)
	}
	signed := keys != nil && len(keys.Team) > 0
	encrypt := signed && len(to) > 0
	if required && !encrypt {
		return nil, fmt.Errorf("notice %d: %s wants encrypted notices and the team has no key to sign with", e.ID, e.Recipient)
	}

	d := noticeData{Team: w.Team.Name, Address: w.Team.Address, Constituent: p.Name, ID: p.Constituent, Tickets: p.Tickets,
		TLP: "TLP:" + upper(p.TLP), Count: len(p.Items), CSV: len(p.Items) > csvAbove, Encrypted: encrypt}
	if !d.CSV {
		for _, it := range p.Items {
			d.Items = append(d.Items, line(it))
		}
	}
	t, err := w.loadTemplate("notice", p.Language)
	if err != nil {
		return nil, &PermanentError{fmt.Errorf("template: %w", err)}
	}
	var body bytes.Buffer
	if err := t.Execute(&body, d); err != nil {
		return nil, &PermanentError{fmt.Errorf("template: %w", err)}
	}
	text := strings.ReplaceAll(strings.ReplaceAll(body.String(), "\r\n", "\n"), "\n", "\r\n")

	var part bytes.Buffer
	textPart := func(b *bytes.Buffer) {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qp := quotedprintable.NewWriter(b)
		_, _ = qp.Write([]byte(text))
		_ = qp.Close()
	}
	if d.CSV {
		bnd := boundaryFor(e.MessageID)
		part.WriteString("Content-Type: multipart/mixed; boundary=\"" + bnd + "\"\r\n\r\n--" + bnd + "\r\n")
		textPart(&part)
		part.WriteString("\r\n--" + bnd + "\r\nContent-Type: text/csv; charset=utf-8; name=\"indicators.csv\"\r\n" +
			"Content-Disposition: attachment; filename=\"indicators.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		part.Write(rawmime.Base64Lines(noticeCSV(p.Items), "\r\n"))
		part.WriteString("--" + bnd + "--\r\n")
	} else {
		textPart(&part)
	}

	subject := noticeSubject(p, d.TLP)
	contentType, payload := "", part.Bytes()
	switch {
	case encrypt:
		contentType, payload, err = keys.SignEncryptMIME(crypto.Part(part.Bytes()), to, now)
	case signed:
		contentType, payload, err = keys.SignMIME(crypto.Part(part.Bytes()), now)
	}
	if err != nil {
		return nil, fmt.Errorf("sign notice: %w", err)
	}
	var b bytes.Buffer
	w.generatedHeader(&b, e, subject, now)
	writeHeader(&b, "X-Auto-Response-Suppress", "All")
	writeHeader(&b, "MIME-Version", "1.0")
	writeBody(&b, contentType, payload)
	return b.Bytes(), nil
}

// noticeSubject names the (first) ticket, the TLP and the constituent;
// nothing of what was reported.
func noticeSubject(p store.NoticePayload, tlp string) string {
	tag := "[" + p.Tickets[0] + "]"
	if len(p.Tickets) > 1 {
		tag += fmt.Sprintf(" (+%d)", len(p.Tickets)-1)
	}
	if p.Language == "ja" {
		return fmt.Sprintf("%s %s %s 様に関するセキュリティ通知（%d 件）", tag, tlp, p.Name, len(p.Items))
	}
	return fmt.Sprintf("%s %s Security notice for %s: %d %s", tag, tlp, p.Name, len(p.Items), plural(len(p.Items), "indicator"))
}

func line(it store.NoticeItem) noticeLine {
	what := strings.Trim(it.Taxonomy+"/"+it.Type, "/")
	if what == "" {
		what = "undetermined"
	}
	return noticeLine{Ticket: it.Ticket, Kind: string(it.Kind), Value: it.Value, What: what,
		ReportedAt: it.ReportedAt.UTC().Format("2006-01-02 15:04 UTC"), Reporter: it.Reporter}
}

// noticeCSV lists the indicators: ticket, kind, value, classification,
// reported at. A value a spreadsheet would take for a formula is
// prefixed with an apostrophe.
func noticeCSV(items []store.NoticeItem) []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	_ = cw.Write([]string{"ticket", "kind", "value", "classification", "reported_at"})
	for _, it := range items {
		l := line(it)
		_ = cw.Write([]string{inert(l.Ticket), l.Kind, inert(l.Value), inert(l.What), l.ReportedAt})
	}
	cw.Flush()
	return b.Bytes()
}

// inert keeps a spreadsheet from evaluating a cell (CSV injection).
func inert(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// boundaryFor is a MIME boundary no indicator can contain (base64 and
// quoted-printable bodies never hold "=_").
func boundaryFor(messageID string) string {
	h := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(messageID))
	if len(h) > 40 {
		h = h[len(h)-40:]
	}
	return "=_notice_" + h
}

func upper(s string) string { return strings.ToUpper(s) }
