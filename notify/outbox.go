package notify

import (
	"bytes"
	"context"
	"crypto/x509"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// Team is what an acknowledgement says about the team.
type Team struct {
	Name, Address, Hours, Timezone string
}

//go:embed templates/*.txt
var builtinTemplates embed.FS

// Writer renders outbox rows and delivers them: to .eml files in Dir, or
// through Deliver (a relay) when set.
type Writer struct {
	// Metrics count deliveries (a set of the writer's own when nil).
	Metrics     *Metrics
	metricsOnce sync.Once
	Store       store.Store
	Dir         string
	Team        Team
	Log         *slog.Logger
	Now         func() time.Time
	// Deliver, when set, replaces .eml files in Dir.
	Deliver Deliverer
	// Keys signs every acknowledgement (PGP/MIME) when the team has a
	// secret key, and encrypts it when the report came encrypted and the
	// reporter's key is known.
	Keys *crypto.Keys
	// KeySource, when set, replaces Keys (serve reloads keys on SIGHUP).
	KeySource func() *crypto.Keys
	// TemplateDir holds ack.en.txt / ack.ja.txt overriding the built-in
	// ones (text/template; fields: Ticket, Team, Address, Hours, Timezone,
	// Subject, Encrypted), and followup.en.txt / followup.ja.txt for the
	// note on follow-ups.
	TemplateDir string
	// AlertInternal: the duty address and the webhook are inside the
	// team and may see an encrypted report's subject in clear.
	AlertInternal bool
	// WebhookSecret signs alert webhooks (HMAC-SHA256 of the body).
	WebhookSecret []byte
	// HTTPClient posts webhooks (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
	// JapaneseCharset is "utf-8" (default) or "iso-2022-jp" for Japanese
	// acknowledgements, as older Japanese mailers expect.
	JapaneseCharset string
	// RatePerHour caps acknowledgements to one correspondent per hour
	// (0: 10), its sub-addresses counted as the address (see
	// SubaddressSeparators). Beyond it rows are skipped with the reason
	// recorded.
	RatePerHour int
	// DomainPerHour caps them to one domain (0: 30) and GlobalPerHour in
	// all (0: 500): forged senders at one victim's domain, or anywhere,
	// cannot turn the gateway into a source of signed backscatter.
	DomainPerHour, GlobalPerHour int
	// SubaddressSeparators are the characters that start a sub-address
	// in a local part ("" : "+"; "+-" for the qmail/Postfix "-" too).
	SubaddressSeparators string
	// MaxAttempts before a row is a dead letter (0: 10).
	MaxAttempts int
	// Lease is how long a claimed row is ours before another sender may
	// take it (0: 5 minutes): the wait before a crashed send is repeated.
	Lease time.Duration
	// ContactKeys, when set, gives the key file of a constituent's
	// contact (notices to it are encrypted, or wait).
	ContactKeys ContactKey
	// AfterDeliver, when set, runs between a delivery and its MarkSent:
	// the crash tests stop the process exactly there.
	AfterDeliver func(store.OutboxEntry)

	skipMu  sync.Mutex
	skipLog map[string]*skipNote // rate-limited recipients: when last logged
}

// skipNote is what the log has said of one rate-limited recipient.
type skipNote struct {
	logged   time.Time // last log line
	unlisted int       // skips since then
}

// skipLogEvery is how often the log names a recipient whose
// acknowledgements the rate limit keeps skipping. Every skipped row keeps
// its reason in the outbox and counts in madoguchi_notify_deliveries_total; a line
// per row would flood the log exactly when one sender floods the gateway.
const skipLogEvery = time.Minute

// noteSkip logs a rate-limited acknowledgement: the first for a recipient
// at once, then at most one line per skipLogEvery saying how many were
// skipped since the last.
func (w *Writer) noteSkip(now time.Time, rcpt string, why string) {
	w.skipMu.Lock()
	defer w.skipMu.Unlock()
	if w.skipLog == nil {
		w.skipLog = map[string]*skipNote{}
	}
	n := w.skipLog[rcpt]
	if n == nil {
		if len(w.skipLog) >= 1000 { // forget recipients quiet for an hour
			for r, o := range w.skipLog {
				if now.Sub(o.logged) > time.Hour {
					delete(w.skipLog, r)
				}
			}
		}
		n = &skipNote{}
		w.skipLog[rcpt] = n
	}
	n.unlisted++
	if !n.logged.IsZero() && now.Sub(n.logged) < skipLogEvery {
		return
	}
	w.Log.Warn("acknowledgements skipped", "recipient", rcpt, "skipped", n.unlisted, "why", why)
	n.logged, n.unlisted = now, 0
}

// templateData is what an acknowledgement template sees.
type templateData struct {
	Ticket, Team, Address, Hours, Timezone, Subject string
	Encrypted                                       bool
	// Text is what staff wrote: a reply, or a resolution.
	Text string
}

func (w *Writer) template(kind, lang string) (*template.Template, error) {
	base := "ack"
	switch kind {
	case store.OutboxFollowUp, store.OutboxReply, store.OutboxResolved:
		base = kind
	}
	return w.loadTemplate(base, lang)
}

// loadTemplate is base.en.txt or base.ja.txt: the operator's from
// TemplateDir when it has one, else the built-in one.
func (w *Writer) loadTemplate(base, lang string) (*template.Template, error) {
	name := base + ".en.txt"
	if lang == "ja" {
		name = base + ".ja.txt"
	}
	if w.TemplateDir != "" {
		if b, err := os.ReadFile(filepath.Join(w.TemplateDir, name)); err == nil {
			return template.New(name).Option("missingkey=error").Parse(string(b))
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	return template.New(name).Option("missingkey=error").ParseFS(builtinTemplates, "templates/"+name)
}

// maxSubjectRunes bounds the original subject echoed in ours;
// maxStrangerSubjectRunes a stranger's.
const (
	maxSubjectRunes         = 200
	maxStrangerSubjectRunes = 60
)

// linkRE finds what a spammer would put in a subject to be carried to a
// victim in our signed acknowledgement: URLs, addresses, host names.
var linkRE = regexp.MustCompile(`(?i)\b(?:[a-z][a-z0-9+.-]*://\S+|www\.\S+|[^\s@<>]+@[^\s@<>]+|(?:[a-z0-9-]+\.)+(?:com|net|org|info|biz|ru|cn|xyz|top|io|co|me|[a-z]{2})\b\S*)`)

// ErrBadRecipient is a recipient no acknowledgement may go to.
var ErrBadRecipient = errors.New("notify: recipient is not a single plain address")

// checkRecipient refuses what could inject headers or loop back to us.
func (w *Writer) checkRecipient(rcpt string) error {
	if rcpt == "" || strings.ContainsAny(rcpt, "\r\n<>,;\"") {
		return ErrBadRecipient
	}
	a, err := mail.ParseAddress(rcpt)
	if err != nil || a.Address != rcpt {
		return ErrBadRecipient
	}
	if strings.EqualFold(rcpt, w.Team.Address) {
		return errors.New("notify: the recipient is the team itself")
	}
	return nil
}

// Render builds the acknowledgement for one outbox row. encrypted tells
// whether it went out encrypted.
func (w *Writer) Render(ctx context.Context, e store.OutboxEntry) (msg []byte, encrypted bool, err error) {
	if err := w.checkRecipient(e.Recipient); err != nil {
		return nil, false, &PermanentError{err}
	}
	js, ticket, err := w.Store.ReportTicket(ctx, e.ReportID)
	if err != nil {
		return nil, false, err
	}
	var r parse.Report
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, false, err
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	orig := echoedSubject(r.Subject, r.TLP, r.Language, !r.Signature.Authenticated())
	// Replies and resolution notices carry what staff wrote.
	var staff store.ReplyPayload
	answer := e.Kind == store.OutboxReply || e.Kind == store.OutboxResolved
	if answer {
		if err := json.Unmarshal([]byte(e.Payload), &staff); err != nil {
			return nil, false, &PermanentError{fmt.Errorf("%s payload: %w", e.Kind, err)}
		}
	}
	prefix := "Re: "
	if e.Kind == store.OutboxResolved {
		prefix = "Resolved: "
		if r.Language == "ja" {
			prefix = "対応完了: "
		}
	}
	subj := fmt.Sprintf("[%s] %s%s", ticket, prefix, orig)

	keys := w.Keys
	if w.KeySource != nil {
		keys = w.KeySource()
	}
	recipientKeys := keys.KeyFor(e.Recipient, now)
	// What came encrypted never leaves in clear headers: the outer
	// Subject of an acknowledgement of an encrypted report is the ticket
	// and a neutral text. When ours is encrypted too, the real subject
	// travels inside as a protected header (RFC 9788); when it cannot be
	// (no key of the reporter), it is not repeated at all.
	came := r.Decryption.Status == vocab.DecOK
	encrypt := came && len(recipientKeys) > 0 && keys != nil && len(keys.Team) > 0
	// A correspondent who wrote in S/MIME is answered in S/MIME: signed
	// with the team's certificate, encrypted to theirs (harvested from
	// their signatures) when the report came encrypted.
	smime, smimeTo := w.smimeFor(ctx, keys, r, e.Recipient)
	if smime {
		encrypt = came && len(smimeTo) > 0
	}
	outerSubj := subj
	if came && answer && !encrypt {
		// Staff's words about an encrypted report never go in clear.
		return nil, false, &PermanentError{fmt.Errorf("the report came encrypted and no key of %s is known: import it and answer again", e.Recipient)}
	}
	if came {
		outerSubj = fmt.Sprintf("[%s] %s%s", ticket, prefix, neutralSubject(r.Language))
		if !encrypt {
			orig, subj = neutralSubject(r.Language), outerSubj
		}
	}

	t, err := w.template(e.Kind, r.Language)
	if err != nil {
		return nil, false, &PermanentError{fmt.Errorf("template: %w", err)}
	}
	var body bytes.Buffer
	if err := t.Execute(&body, templateData{Ticket: ticket, Team: w.Team.Name, Address: w.Team.Address, Hours: w.Team.Hours,
		Timezone: w.Team.Timezone, Subject: orig, Encrypted: encrypt, Text: staff.Text}); err != nil {
		return nil, false, &PermanentError{fmt.Errorf("template: %w", err)}
	}
	text := strings.ReplaceAll(strings.ReplaceAll(body.String(), "\r\n", "\n"), "\n", "\r\n")

	// The body part: 7-bit clean, as signed parts must be (RFC 3156).
	var part bytes.Buffer
	charset := "utf-8"
	if r.Language == "ja" && strings.EqualFold(w.JapaneseCharset, "iso-2022-jp") {
		enc, err := japanese.ISO2022JP.NewEncoder().String(text)
		if err == nil {
			charset = "iso-2022-jp"
			if encrypt {
				w.protectedHeaders(&part, e, subj, outerSubj, charset, now)
			}
			part.WriteString("Content-Type: text/plain; charset=iso-2022-jp" + hp(encrypt) + "\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
			part.WriteString(enc)
		}
	}
	if charset == "utf-8" {
		if encrypt {
			w.protectedHeaders(&part, e, subj, outerSubj, charset, now)
		}
		part.WriteString("Content-Type: text/plain; charset=utf-8" + hp(encrypt) + "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qp := quotedprintable.NewWriter(&part)
		_, _ = qp.Write([]byte(text))
		_ = qp.Close()
	}

	contentType, payload, cte := "", part.Bytes(), ""
	signed := keys != nil && len(keys.Team) > 0
	switch {
	case smime:
		contentType, payload, err = keys.SMIME.SignMIME(crypto.Part(part.Bytes()))
		if err == nil && encrypt {
			inner := crypto.Part("Content-Type: " + contentType + "\r\n\r\n" + string(payload))
			contentType, payload, err = keys.SMIME.EncryptMIME(inner, smimeTo)
			cte = "base64"
		}
	case encrypt:
		contentType, payload, err = keys.SignEncryptMIME(crypto.Part(part.Bytes()), recipientKeys, now)
	case signed:
		contentType, payload, err = keys.SignMIME(crypto.Part(part.Bytes()), now)
	}
	if err != nil {
		return nil, false, fmt.Errorf("sign: %w", err)
	}

	var b bytes.Buffer
	hdr := func(k, v string) { writeHeader(&b, k, v) }
	hdr("From", mime.QEncoding.Encode("utf-8", w.Team.Name)+" <"+w.Team.Address+">")
	hdr("To", "<"+e.Recipient+">")
	hdr("Subject", encodeSubject(outerSubj, charset))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", e.MessageID)
	if r.MessageID != "" {
		hdr("In-Reply-To", r.MessageID)
		refs := append(append([]string{}, r.Thread.References...), r.MessageID)
		if len(refs) > 20 {
			refs = refs[len(refs)-20:]
		}
		hdr("References", strings.Join(refs, " "))
	}
	switch e.Kind {
	case store.OutboxReply: // a person wrote it: an answer like any other
	case store.OutboxResolved:
		hdr("Auto-Submitted", "auto-generated")
		hdr("X-Auto-Response-Suppress", "All")
	default:
		hdr("Auto-Submitted", "auto-replied")
		hdr("X-Auto-Response-Suppress", "All")
		hdr("Precedence", "bulk")
	}
	hdr("MIME-Version", "1.0")
	if cte != "" {
		hdr("Content-Transfer-Encoding", cte)
	}
	writeBody(&b, contentType, payload)
	return b.Bytes(), encrypt, nil
}

// smimeFor tells whether a report's correspondent is answered in S/MIME
// (they signed or encrypted with it, and the team has an S/MIME
// identity) and, if so, the certificates to encrypt to: the one kept for
// the recipient address, else for the report's From.
func (w *Writer) smimeFor(ctx context.Context, keys *crypto.Keys, r parse.Report, rcpt string) (bool, []*x509.Certificate) {
	if keys == nil || keys.SMIME == nil || keys.SMIME.Cert == nil || (r.Signature.Method != "smime" && r.Decryption.Method != "smime") {
		return false, nil
	}
	for _, addr := range []string{rcpt, r.From} {
		der, err := w.Store.Certificate(ctx, addr)
		if err != nil {
			continue
		}
		if c, err := x509.ParseCertificate(der); err == nil && w.now().Before(c.NotAfter) {
			return true, []*x509.Certificate{c}
		}
	}
	return true, nil
}

// echoedSubject is the part of the reporter's subject ours repeats:
// without reply prefixes, bounded, and nothing of a TLP:RED report (notify
// never repeats its content, even to its sender's mail system).
//
// A stranger's subject (no authenticated sender) is sanitised: control
// and bidirectional-override characters dropped, links, addresses and
// host names replaced by "[…]", and at most maxStrangerSubjectRunes kept:
// a forged sender cannot have us carry a spam line to its victim.
func echoedSubject(subject string, tlp *vocab.TLP, lang string, stranger bool) string {
	orig := strings.TrimSpace(subject)
	for _, p := range []string{"Re:", "RE:", "re:", "Fwd:", "FW:"} {
		orig = strings.TrimSpace(strings.TrimPrefix(orig, p))
	}
	limit := maxSubjectRunes
	if stranger {
		limit = maxStrangerSubjectRunes
		orig = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u200b' || r == '\ufeff' {
				return -1
			}
			return r
		}, orig)
		orig = strings.Join(strings.Fields(linkRE.ReplaceAllString(orig, "[…]")), " ")
	}
	if utf8.RuneCountInString(orig) > limit {
		orig = string([]rune(orig)[:limit]) + "…"
	}
	if tlp != nil && *tlp == vocab.TLPRed || orig == "" {
		orig = "your report"
		if lang == "ja" {
			orig = "ご報告"
		}
	}
	return orig
}

// neutralSubject stands for the subject of an encrypted report wherever
// ours is not encrypted.
func neutralSubject(lang string) string {
	if lang == "ja" {
		return "暗号化されたご報告"
	}
	return "your encrypted report"
}

// encodeSubject encodes a Subject value as encoded words in charset
// (iso-2022-jp when the body is, else UTF-8).
func encodeSubject(subj, charset string) string {
	if charset == "iso-2022-jp" {
		if s, err := japanese.ISO2022JP.NewEncoder().String(subj); err == nil {
			return mime.BEncoding.Encode("iso-2022-jp", s)
		}
	}
	return mime.BEncoding.Encode("utf-8", subj)
}

// hp is the Content-Type parameter that marks the root of an encrypted
// payload as carrying protected headers (RFC 9788 section 2.1.1).
func hp(encrypted bool) string {
	if encrypted {
		return "; hp=\"cipher\""
	}
	return ""
}

// protectedHeaders writes the header fields that RFC 9788 puts inside the
// encrypted part, the real Subject among them, and HP-Outer fields telling
// the reader's client what the outer header showed instead.
func (w *Writer) protectedHeaders(b *bytes.Buffer, e store.OutboxEntry, subj, outerSubj, charset string, now time.Time) {
	writeHeader(b, "From", mime.QEncoding.Encode("utf-8", w.Team.Name)+" <"+w.Team.Address+">")
	writeHeader(b, "To", "<"+e.Recipient+">")
	writeHeader(b, "Subject", encodeSubject(subj, charset))
	writeHeader(b, "Date", now.Format(time.RFC1123Z))
	writeHeader(b, "Message-ID", e.MessageID)
	writeHeader(b, "HP-Outer", "Subject: "+encodeSubject(outerSubj, charset))
}

// budget is one hourly limit an acknowledgement counts against.
type budget struct {
	key   string           // what is counted, for this pass's tallies
	who   store.Recipients // the rows it counts
	limit int
	what  string // for the skip reason
}

// budgets are the limits an acknowledgement to rcpt counts against: its
// address with its sub-addresses, its domain, and all acknowledgements.
func (w *Writer) budgets(rcpt string) []budget {
	per := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	rcpt = strings.ToLower(rcpt)
	local, domain, ok := strings.Cut(rcpt, "@")
	if !ok {
		return []budget{{key: "all", who: store.Recipients{All: true}, limit: per(w.GlobalPerHour, 500), what: "in all"}}
	}
	seps := w.SubaddressSeparators
	if seps == "" {
		seps = "+"
	}
	base := local
	if i := strings.IndexAny(local, seps); i > 0 {
		base = local[:i]
	}
	addr := store.Recipients{Exact: base + "@" + domain}
	for _, sep := range seps {
		addr.Like = append(addr.Like, store.LikeEscape(base+string(sep))+"%"+store.LikeEscape("@"+domain))
	}
	return []budget{
		{key: "addr:" + base + "@" + domain, who: addr, limit: per(w.RatePerHour, 10), what: "to " + base + "@" + domain + " and its sub-addresses"},
		{key: "domain:" + domain, who: store.Recipients{Like: []string{"%" + store.LikeEscape("@"+domain)}}, limit: per(w.DomainPerHour, 30), what: "to " + domain},
		{key: "all", who: store.Recipients{All: true}, limit: per(w.GlobalPerHour, 500), what: "in all"},
	}
}

// Run delivers pending rows until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := w.Once(ctx)
		if err != nil {
			w.Log.Error("outbox", "err", err)
		}
		if n == 0 {
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// deliver sends one row according to its kind.
func (w *Writer) deliver(ctx context.Context, e store.OutboxEntry) error {
	var msg []byte
	var err error
	switch e.Kind {
	case store.OutboxWebhook:
		return w.postWebhook(ctx, e)
	case store.OutboxAlert:
		msg, err = w.renderAlert(ctx, e)
	case store.OutboxNotice:
		msg, err = w.renderNotice(e)
	default:
		msg, _, err = w.Render(ctx, e)
	}
	if err != nil {
		return err
	}
	// Acknowledgements go out with a null envelope sender (RFC 3834
	// section 3.3), so that no bounce or auto-reply comes back to loop.
	return w.deliverer().Deliver(ctx, "", []string{e.Recipient}, msg, e.MessageID)
}

func (w *Writer) deliverer() Deliverer {
	if w.Deliver != nil {
		return w.Deliver
	}
	return FileDelivery{Dir: w.Dir}
}

// backoff is the wait before retry n: 30 s doubling, at most 1 h.
func backoff(attempt int) time.Duration {
	return min(30*time.Second<<min(attempt, 7), time.Hour)
}

// Once delivers one batch and returns how many rows it handled.
//
// A row is marked sent after the relay accepted it. If the daemon dies in
// between, the row's lease runs out and it is sent again: a receiver sees
// at most one repeat per crash, with the same Message-ID, so it can drop it.
func (w *Writer) Once(ctx context.Context) (int, error) {
	lease := w.Lease
	if lease <= 0 {
		lease = 5 * time.Minute
	}
	rows, err := w.Store.ClaimOutbox(ctx, 16, lease)
	if err != nil {
		return 0, err
	}
	maxAttempts := w.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 10
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	// Rows skipped by the rate limit are marked together, after the loop
	// (or before an early return): nothing was sent for them, so a crash
	// before the mark only has them claimed and skipped again.
	var skips []store.OutboxSkip
	flush := func() error { return w.Store.MarkOutboxSkippedAll(ctx, skips) }
	// The budgets: acknowledgements in the last hour to each address (its
	// sub-addresses with it), to each domain and in all; those before this
	// claim as the store has them, those of this claim as they are sent
	// (its other rows are "sending" in the store until they are decided,
	// and must not count). Rows another writer claims meanwhile with
	// higher IDs are not seen: two writers sending at the same moment can
	// each send up to a budget.
	var first int64
	if len(rows) > 0 {
		first = rows[0].ID // claims come oldest first
	}
	before := map[string]int{}
	sentNow := map[string]int{}
	for i, e := range rows {
		// Staff alerts and constituents' notices are not answers to a
		// correspondent: the backscatter budgets are not theirs.
		budgeted := e.Kind == store.OutboxAck || e.Kind == store.OutboxFollowUp
		over := ""
		if budgeted {
			for _, b := range w.budgets(e.Recipient) {
				c, ok := before[b.key]
				if !ok {
					if c, err = w.Store.RecentTo(ctx, b.who, now.Add(-time.Hour), first, b.limit); err != nil {
						_ = flush()
						return 0, err
					}
					before[b.key] = c
				}
				if n := c + sentNow[b.key]; n >= b.limit {
					over = fmt.Sprintf("rate limit: %d acknowledgements %s in the last hour", n, b.what)
					break
				}
			}
		}
		if over != "" {
			w.metrics().Deliveries.WithLabelValues("skipped").Inc()
			w.noteSkip(now, e.Recipient, over)
			skips = append(skips, store.OutboxSkip{ID: e.ID, Reason: over})
			continue
		}
		err := w.deliver(ctx, e)
		if err == nil && w.AfterDeliver != nil {
			w.AfterDeliver(e)
		}
		var refused *oauth.PermanentError
		if errors.As(err, &refused) {
			// The relay's credential is refused: the relay is stopped,
			// not the rows. This row and the rest of the claim wait,
			// uncounted, and the next pass tries again (the token source
			// has logged the refusal once).
			w.metrics().Deliveries.WithLabelValues("postponed").Inc()
			for _, r := range rows[i:] {
				if perr := w.Store.PostponeOutbox(ctx, r.ID, oneLine(err), time.Minute); perr != nil {
					_ = flush()
					return 0, perr
				}
			}
			if ferr := flush(); ferr != nil {
				return 0, ferr
			}
			return len(rows), nil
		}
		if err != nil {
			dead := IsPermanent(err) || e.Attempts >= maxAttempts
			state := "retry"
			if dead {
				state = "dead"
			}
			w.metrics().Deliveries.WithLabelValues(state).Inc()
			if dead && e.Kind == store.OutboxNotice {
				w.noticeDone(ctx, e, "dead", "notice %d to %s is a dead letter: "+strings.ReplaceAll(oneLine(err), "%", "%%"))
			}
			w.Log.Warn("outbox row failed", "id", e.ID, "recipient", e.Recipient, "attempt", e.Attempts, "dead", dead, "err", err)
			if merr := w.Store.MarkOutboxFailed(ctx, e.ID, oneLine(err), dead, backoff(e.Attempts)); merr != nil {
				_ = flush()
				return 0, merr
			}
			continue
		}
		w.metrics().Deliveries.WithLabelValues("sent").Inc()
		if e.CreatedAt.After(now.Add(-time.Hour)) && e.Kind != store.OutboxAlert && e.Kind != store.OutboxWebhook {
			for _, b := range w.budgets(e.Recipient) {
				sentNow[b.key]++
			}
		}
		if err := w.Store.MarkSent(ctx, e.ID); err != nil {
			_ = flush()
			return 0, err
		}
		if e.Kind == store.OutboxNotice {
			w.noticeDone(ctx, e, "sent", "notice %d sent to %s")
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return len(rows), nil
}

// noticeDone counts a notice's end and logs it on its incidents (a
// failure to log is only logged: the row's state is what counts).
func (w *Writer) noticeDone(ctx context.Context, e store.OutboxEntry, state, format string) {
	var p store.NoticePayload
	_ = json.Unmarshal([]byte(e.Payload), &p)
	w.metrics().Notices.WithLabelValues(p.Constituent, state).Inc()
	if err := w.Store.AddEvent(ctx, p.Incidents, "notice", "", fmt.Sprintf(format, e.ID, e.Recipient)); err != nil {
		w.Log.Warn("notice event", "id", e.ID, "err", err)
	}
}

func oneLine(err error) string {
	s := strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// writeBody ends a message's header and writes its body: a part's own
// header and body as they are (contentType ""), or the Content-Type of a
// signed or encrypted entity and its body.
func writeBody(b *bytes.Buffer, contentType string, payload []byte) {
	if contentType == "" {
		b.Write(payload) // the part's own headers follow on
		return
	}
	writeHeader(b, "Content-Type", contentType)
	b.WriteString("\r\n")
	b.Write(payload)
}

// writeHeader writes one header field, CR and LF removed (no injection),
// folded at spaces so that no line passes 78 octets where a space allows
// (RFC 5322 2.1.1; encoded words are separated by spaces, so a long
// encoded Subject folds between them).
func writeHeader(b *bytes.Buffer, name, value string) {
	value = strings.NewReplacer("\r", " ", "\n", " ").Replace(value)
	line := name + ":"
	for i, word := range strings.Split(value, " ") {
		if i > 0 && len(line)+1+len(word) > 78 && strings.TrimSpace(line) != name+":" {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
}
