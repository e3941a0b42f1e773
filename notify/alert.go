package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// WebhookPayload is the JSON body of an alert webhook.
type WebhookPayload struct {
	Event      string    `json:"event"` // "incident.created"
	Ticket     string    `json:"ticket"`
	Taxonomy   string    `json:"taxonomy"`
	Type       string    `json:"type"`
	Confidence float64   `json:"confidence"`
	TLP        string    `json:"tlp,omitempty"`
	Reporter   string    `json:"reporter"`
	Subject    string    `json:"subject,omitempty"`   // left out for TLP:RED and, unless internal, encrypted reports
	Encrypted  bool      `json:"encrypted,omitempty"` // the report came encrypted
	ReportID   int64     `json:"report_id"`
	SentAt     time.Time `json:"sent_at"`
}

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the shared secret (the GitHub webhook convention).
const SignatureHeader = "X-Madoguchi-Signature"

// Sign returns the SignatureHeader value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// alertData is what an alert says. clear tells whether it goes out in
// clear to a destination not marked internal: then an encrypted report's
// subject stays out.
func (w *Writer) alertData(ctx context.Context, e store.OutboxEntry, clear bool) (WebhookPayload, error) {
	js, ticket, err := w.Store.ReportTicket(ctx, e.ReportID)
	if err != nil {
		return WebhookPayload{}, err
	}
	var a parse.Report
	if err := json.Unmarshal(js, &a); err != nil {
		return WebhookPayload{}, err
	}
	p := WebhookPayload{Event: "incident.created", Ticket: ticket, Taxonomy: a.Classification.Taxonomy, Type: a.Classification.Type,
		Confidence: a.Classification.Confidence, Reporter: a.From, Subject: a.Subject, ReportID: e.ReportID, SentAt: w.now().UTC(),
		Encrypted: a.Decryption.Status == vocab.DecOK}
	if p.Encrypted && clear && !w.AlertInternal {
		p.Subject = ""
	}
	if a.TLP != nil {
		p.TLP = string(*a.TLP)
		if *a.TLP == vocab.TLPRed {
			p.Subject = ""
		}
	}
	return p, nil
}

func (w *Writer) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// renderAlert builds the staff alert mail for the duty address.
func (w *Writer) renderAlert(ctx context.Context, e store.OutboxEntry) ([]byte, error) {
	if err := w.checkRecipient(e.Recipient); err != nil {
		return nil, &PermanentError{err}
	}
	keys := w.Keys
	if w.KeySource != nil {
		keys = w.KeySource()
	}
	now := w.now()
	dutyKeys := keys.KeyFor(e.Recipient, now)
	encrypt := len(dutyKeys) > 0 && keys != nil && len(keys.Team) > 0
	a, err := w.alertData(ctx, e, !encrypt)
	if err != nil {
		return nil, err
	}
	subject := a.Subject
	switch {
	case subject != "":
	case a.TLP == string(vocab.TLPRed):
		subject = "(subject withheld: TLP:RED)"
	case a.Encrypted:
		subject = "(subject withheld: encrypted report)"
	}
	outer := fmt.Sprintf("[%s] NEW %s/%s: %s", a.Ticket, a.Taxonomy, a.Type, subject)
	if encrypt && a.Encrypted {
		outer = fmt.Sprintf("[%s] NEW %s/%s: (encrypted report)", a.Ticket, a.Taxonomy, a.Type)
	}
	var text bytes.Buffer
	fmt.Fprintf(&text, "A new incident needs attention.\r\n\r\nTicket:         %s\r\nClassification: %s/%s (confidence %.2f)\r\nTLP:            %s\r\nReporter:       %s\r\nSubject:        %s\r\n",
		a.Ticket, a.Taxonomy, a.Type, a.Confidence, orNone(a.TLP), a.Reporter, subject)
	var part bytes.Buffer
	if encrypt {
		// The duty address's key is known: the alert goes signed and
		// encrypted, the real subject inside as a protected header.
		writeHeader(&part, "Subject", mime.BEncoding.Encode("utf-8", fmt.Sprintf("[%s] NEW %s/%s: %s", a.Ticket, a.Taxonomy, a.Type, subject)))
		part.WriteString("Content-Type: text/plain; charset=utf-8" + hp(true) + "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	} else {
		part.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	}
	qp := quotedprintable.NewWriter(&part)
	_, _ = qp.Write(text.Bytes())
	_ = qp.Close()
	contentType, payload := "", part.Bytes()
	if encrypt {
		if contentType, payload, err = keys.SignEncryptMIME(crypto.Part(part.Bytes()), dutyKeys, now); err != nil {
			return nil, fmt.Errorf("encrypt alert: %w", err)
		}
	}
	var b bytes.Buffer
	w.generatedHeader(&b, e, outer, now)
	hdr := func(k, v string) { writeHeader(&b, k, v) }
	hdr("Importance", "high")
	hdr("X-Priority", "1")
	hdr("MIME-Version", "1.0")
	writeBody(&b, contentType, payload)
	return b.Bytes(), nil
}

// generatedHeader writes the header fields of a message the gateway
// sends of its own accord (an alert, a notice), not in answer to one.
func (w *Writer) generatedHeader(b *bytes.Buffer, e store.OutboxEntry, subject string, now time.Time) {
	writeHeader(b, "From", mime.QEncoding.Encode("utf-8", w.Team.Name)+" <"+w.Team.Address+">")
	writeHeader(b, "To", "<"+e.Recipient+">")
	writeHeader(b, "Subject", mime.BEncoding.Encode("utf-8", subject))
	writeHeader(b, "Date", now.Format(time.RFC1123Z))
	writeHeader(b, "Message-ID", e.MessageID)
	writeHeader(b, "Auto-Submitted", "auto-generated")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// postWebhook sends the alert as JSON, signed with the shared secret. A 2xx
// is delivered; 408, 429 and 5xx are retried; other 4xx are dead letters.
func (w *Writer) postWebhook(ctx context.Context, e store.OutboxEntry) error {
	a, err := w.alertData(ctx, e, true)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(a)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Recipient, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Madoguchi-Delivery", e.MessageID)
	if len(w.WebhookSecret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.WebhookSecret, body))
	}
	c := w.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
		return fmt.Errorf("webhook %s: %s", e.Recipient, resp.Status)
	default:
		return &PermanentError{fmt.Errorf("webhook %s: %s", e.Recipient, resp.Status)}
	}
}
