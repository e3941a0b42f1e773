package pipeline

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/senderauth"
	"github.com/madoguchi/madoguchi/store"
)

// Processor turns one spooled message into a filed report.
type Processor struct {
	Store store.Store
	Keys  *crypto.Keys // nil: no OpenPGP processing
	// KeySource, when set, is asked for the keys of each message instead
	// of Keys (serve reloads them on SIGHUP).
	KeySource   func() *crypto.Keys
	CryptoLimit crypto.Limits
	ParseOpts   parse.Options
	AckDomain   string // right-hand side of our Message-IDs
	NoAck       bool   // import --no-ack
	MaxAttempts int
	Lease       time.Duration
	Log         *slog.Logger
	Now         func() time.Time
	// ParseSlots, when set, is a semaphore that bounds how many workers
	// unwrap and parse at once (its capacity). Workers beyond it still
	// overlap their store round trips with others' parsing.
	ParseSlots chan struct{}
	// FollowUpNote queues a short note for messages joining an open ticket.
	FollowUpNote bool
	// AlertOn lists classifications ("taxonomy" or "taxonomy/type") whose
	// new incidents alert staff at DutyAddress and/or WebhookURL.
	AlertOn     []string
	DutyAddress string
	WebhookURL  string
	// Auth, when set, authenticates each message's sender (DKIM, SPF,
	// DMARC) before it is filed.
	Auth *senderauth.Checker
	// Constituents, when set, is asked for the constituents to match each
	// report against (serve reloads them on SIGHUP).
	Constituents func() *constituency.Set
	// Metrics count what the processor does (a set of its own when nil).
	Metrics     *Metrics
	metricsOnce sync.Once
}

// Analyze runs crypto and parse over raw bytes: what `madoguchi parse`
// prints and what the pipeline files. Pure: no I/O.
func Analyze(raw []byte, keys *crypto.Keys, cl crypto.Limits, opt parse.Options, now time.Time) (*parse.Report, error) {
	rep, _, err := analyzeTimed(raw, keys, cl, opt, now)
	return rep, err
}

// stageTimes are the durations of Analyze's two stages, and what unwrap
// found besides the report: a good S/MIME signature's certificate (to
// keep for encrypted answers).
type stageTimes struct {
	unwrap, parse time.Duration
	signerCert    *x509.Certificate
}

func analyzeTimed(raw []byte, keys *crypto.Keys, cl crypto.Limits, opt parse.Options, now time.Time) (*parse.Report, stageTimes, error) {
	var st stageTimes
	t0 := time.Now()
	res := crypto.Unwrap(raw, keys, cl, now)
	t1 := time.Now()
	rep, err := parse.Parse(res.Cleartext, opt)
	st.unwrap, st.parse, st.signerCert = t1.Sub(t0), time.Since(t1), res.SignerCert
	if rep == nil {
		return nil, st, err
	}
	// The evidence is the message as received, not the cleartext.
	rep.ReceivedSHA256 = crypto.SHA256Hex(raw)
	rep.Decryption = parse.Decryption{Status: res.Decryption, Method: cmp.Or(res.DecryptionMethod, "none"), Detail: res.DecryptionDetail}
	rep.Signature = parse.Signature{Status: res.Signature, Method: cmp.Or(res.SignatureMethod, "none"), SignerFingerprint: res.SignerFingerprint,
		Signer: res.Signer, Detail: res.SignatureDetail, SignerEmail: res.SignerEmail, SignerSubject: res.SignerSubject,
		SignerIssuer: res.SignerIssuer, SignerCertSHA256: res.SignerCertSHA256}
	if res.Signature != vocab.SigNone {
		rep.Signature.Scope = vocab.ScopeWhole
		if res.SignedPart != "" {
			rep.Signature.Scope, rep.Signature.SignedPart = vocab.ScopePart, res.SignedPart
			rep.Warnings = append(rep.Warnings, "the signature covers only "+res.SignedPart+": the rest of the message is not vouched for")
		}
	}
	if res.ProtectedSubject != "" {
		rep.Subject = res.ProtectedSubject
	}
	if res.Signature == vocab.SigGood && rep.From != "" && !res.SignerHasAddress(rep.From) {
		rep.Signature.SignerMismatch = true
		rep.Warnings = append(rep.Warnings, "good signature, but the signing key does not carry the From address "+rep.From)
	}
	if res.Decryption != vocab.DecNone && res.Decryption != vocab.DecOK {
		rep.Warnings = append(rep.Warnings, "decryption "+string(res.Decryption)+": "+res.DecryptionDetail)
	}
	return rep, st, err
}

// Process handles one claimed spool row. It returns the filing result; an
// error means the row was failed (retried or quarantined).
func (p *Processor) Process(ctx context.Context, spoolID int64) (store.FileResult, error) {
	it, err := p.prepare(ctx, spoolID)
	if err != nil {
		return store.FileResult{}, err
	}
	t0 := time.Now()
	res, err := p.Store.File(ctx, it.f)
	p.metrics().Stage.WithLabelValues("file").Observe(time.Since(t0).Seconds())
	p.done(ctx, it, res, err)
	return res, err
}

// item is one analysed message on its way to the store.
type item struct {
	msg        *store.Message
	rep        *parse.Report
	f          *store.Filing
	start      time.Time
	signerCert *x509.Certificate
	certKept   bool // harvest stored signerCert anew
}

// prepare loads and analyses one spooled message. A message that cannot be
// analysed is failed here (retried or quarantined) and err says why.
func (p *Processor) prepare(ctx context.Context, id int64) (*item, error) {
	start := time.Now()
	msg, err := p.Store.GetMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	return p.analyse(ctx, msg, start)
}

// analyse is prepare once the message is loaded.
func (p *Processor) analyse(ctx context.Context, msg *store.Message, start time.Time) (*item, error) {
	id := msg.ID
	rep, st, perr := p.analyzeSafe(msg)
	p.metrics().Stage.WithLabelValues("unwrap").Observe(st.unwrap.Seconds())
	p.metrics().Stage.WithLabelValues("parse").Observe(st.parse.Seconds())
	if rep == nil {
		p.fail(ctx, id, "parse-error", perr)
		p.observe("failed", time.Since(start))
		return nil, perr
	}
	p.authenticate(ctx, msg, rep)
	if a := rep.Authentication; a != nil {
		p.metrics().Verdicts.WithLabelValues("dkim", a.DKIM).Inc()
		p.metrics().Verdicts.WithLabelValues("spf", a.SPF).Inc()
		p.metrics().Verdicts.WithLabelValues("dmarc", a.DMARC).Inc()
	}
	p.metrics().Verdicts.WithLabelValues("decryption", string(rep.Decryption.Status)).Inc()
	p.metrics().Verdicts.WithLabelValues("signature", string(rep.Signature.Status)).Inc()
	it := &item{msg: msg, rep: rep, f: p.filing(msg, rep), start: start, signerCert: st.signerCert}
	p.harvest(ctx, it)
	return it, nil
}

// processBatch handles several claimed rows (msgs[i] is the message of
// ids[i], nil if it could not be read): each is analysed alone, and
// the filings go to the store in one transaction (one commit for all,
// group commit for filing). If that transaction fails, each row is filed
// alone, so one bad row cannot hold the others back.
func (p *Processor) processBatch(ctx context.Context, ids []int64, msgs []*store.Message, start time.Time) {
	var items []*item
	for i, id := range ids {
		if msgs[i] == nil {
			p.log().Warn("process", "spool", id, "err", store.ErrNotFound)
			continue
		}
		it, err := p.analyse(ctx, msgs[i], start)
		if err != nil {
			p.log().Warn("process", "spool", id, "err", err)
			continue
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return
	}
	fs := make([]*store.Filing, len(items))
	for i, it := range items {
		fs[i] = it.f
	}
	t0 := time.Now()
	results, err := p.Store.FileBatch(ctx, fs)
	d := time.Since(t0)
	if err != nil {
		p.log().Warn("batch filing failed; filing one by one", "rows", len(fs), "err", err)
		for _, it := range items {
			t1 := time.Now()
			res, err := p.Store.File(ctx, it.f)
			p.metrics().Stage.WithLabelValues("file").Observe(time.Since(t1).Seconds())
			p.done(ctx, it, res, err)
		}
		return
	}
	for i, it := range items {
		p.metrics().Stage.WithLabelValues("file").Observe(d.Seconds() / float64(len(items)))
		p.done(ctx, it, results[i], nil)
	}
}

// done records one message's end: metrics, log, or the failure.
func (p *Processor) done(ctx context.Context, it *item, res store.FileResult, err error) {
	o := res.Outcome
	if err != nil {
		o = "failed"
		p.fail(ctx, it.msg.ID, "store-error", err)
	} else {
		p.metrics().EndToEnd.Observe(time.Since(it.msg.ReceivedAt).Seconds())
		p.log().Info("filed", "spool", it.msg.ID, "ticket", res.Ticket, "outcome", res.Outcome, "message_id", it.rep.MessageID, "ack", res.AckID != 0)
		p.harvested(ctx, it, res)
	}
	p.observe(o, time.Since(it.start))
}

// harvest keeps the certificate of a good S/MIME signature bound to the
// From address, so that answers to its sender can be encrypted. It runs
// before the filing, so that the acknowledgement the filing queues finds
// it; the incident is told once the filing says which (harvested).
func (p *Processor) harvest(ctx context.Context, it *item) {
	c, sig := it.signerCert, it.rep.Signature
	if c == nil || sig.Status != vocab.SigGood || sig.Method != "smime" || sig.SignerMismatch || it.rep.From == "" {
		return
	}
	changed, err := p.Store.SaveCertificate(ctx, it.rep.From, c.Raw, sig.SignerCertSHA256, c.NotAfter)
	if err != nil {
		p.log().Warn("S/MIME certificate not kept", "from", it.rep.From, "err", err)
		return
	}
	it.certKept = changed
}

// harvested logs a newly kept certificate on the incident.
func (p *Processor) harvested(ctx context.Context, it *item, res store.FileResult) {
	if !it.certKept || res.IncidentID == 0 {
		return
	}
	c, sig := it.signerCert, it.rep.Signature
	_ = p.Store.AddEvent(ctx, []int64{res.IncidentID}, "certificate", "",
		fmt.Sprintf("S/MIME certificate of %s kept (SHA-256 %s, valid until %s): answers to it are encrypted", it.rep.From, sig.SignerCertSHA256[:16], c.NotAfter.Format(time.DateOnly)))
}

// observe counts a processed message's outcome and time.
func (p *Processor) observe(outcome string, d time.Duration) {
	p.metrics().Processed.WithLabelValues(outcome).Inc()
	p.metrics().Seconds.Observe(d.Seconds())
}

func (p *Processor) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return p.Log
}

// analyzeSafe runs Analyze, turning a panic into an error so one message
// never takes the daemon down.
func (p *Processor) analyzeSafe(msg *store.Message) (rep *parse.Report, st stageTimes, err error) {
	defer func() {
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	opt := p.ParseOpts
	opt.HasEnvelope = msg.Channel != store.ChannelImport
	opt.MailFrom = msg.MailFrom
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	keys := p.Keys
	if p.KeySource != nil {
		keys = p.KeySource()
	}
	if p.ParseSlots != nil {
		p.ParseSlots <- struct{}{}
		defer func() { <-p.ParseSlots }()
	}
	return analyzeTimed(msg.Raw, keys, p.CryptoLimit, opt, now)
}

// ParseSlotsFor returns a semaphore for ParseSlots of n slots; n < 1 means
// one less than GOMAXPROCS, at least one.
func ParseSlotsFor(n int) chan struct{} {
	if n < 1 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	return make(chan struct{}, n)
}

func (p *Processor) fail(ctx context.Context, id int64, reason string, cause error) {
	q, err := p.Store.Fail(ctx, id, reason, cause.Error(), p.MaxAttempts)
	if err != nil {
		p.log().Error("cannot record failure", "spool", id, "err", err)
		return
	}
	if q {
		p.log().Warn("quarantined", "spool", id, "reason", reason, "err", cause)
	} else {
		p.log().Warn("failed; will retry", "spool", id, "reason", reason, "err", cause)
	}
}

func (p *Processor) filing(msg *store.Message, rep *parse.Report) *store.Filing {
	js, _ := json.Marshal(rep)
	f := &store.Filing{
		SpoolID: msg.ID, MessageID: rep.MessageID, Sender: rep.From, Subject: rep.Subject,
		Taxonomy: rep.Classification.Taxonomy, Type: rep.Classification.Type, ReportJSON: js,
		References: append([]string{}, rep.Thread.References...),
	}
	if rep.Thread.InReplyTo != "" {
		f.References = append([]string{rep.Thread.InReplyTo}, f.References...)
	}
	if rep.Thread.Ticket != nil {
		f.Ticket = *rep.Thread.Ticket
	}
	if rep.TLP != nil {
		f.TLP = string(*rep.TLP)
	}
	f.Trusted = trusted(msg, rep)
	f.SenderForged = forged(rep)
	// A bounce of our mail, or a message in the team's name that is not
	// authenticated as the team's, names a ticket: it may join it by the
	// unguessable Message-ID of what we sent, but is no report of its own.
	fromTeam := slices.ContainsFunc(p.ParseOpts.OwnAddresses, func(a string) bool { return strings.EqualFold(a, rep.From) })
	// Mail from the team's own domain that passes DMARC is the team's.
	if fromTeam && rep.Authentication != nil && rep.Authentication.DMARC == "pass" {
		f.Trusted = true
	}
	if (rep.Trust == "bounce-of-own-message" || fromTeam && !f.Trusted) && (f.Ticket != "" || len(f.References) > 0) {
		f.AttachOnly = true
	}
	rep.Indicators.Each(func(kind vocab.IndicatorKind, vs []string) {
		for _, v := range vs {
			f.Indicators = append(f.Indicators, store.Indicator{Kind: kind, Value: strings.ToLower(v)})
		}
	})
	if p.Constituents != nil {
		set := p.Constituents()
		f.SenderConstituent = set.SenderOf(rep.From)
		if !f.AttachOnly {
			f.Matches = matches(set, rep)
		}
	}
	if rep.Ack.Send && !p.NoAck {
		rcpt := msg.MailFrom
		if rcpt == "" || msg.Channel == store.ChannelImport {
			rcpt = rep.ReplyTo
			if rcpt == "" {
				rcpt = rep.From
			}
		}
		if rcpt != "" && !strings.ContainsAny(rcpt, "\r\n") {
			f.Ack = &store.AckRequest{Recipient: strings.ToLower(strings.Trim(rcpt, "<>")), Domain: p.AckDomain, FollowUp: p.FollowUpNote}
		}
	}
	for _, c := range p.AlertOn {
		if c == rep.Classification.Taxonomy || c == rep.Classification.Taxonomy+"/"+rep.Classification.Type {
			f.Alert = &store.AlertRequest{DutyAddress: p.DutyAddress, WebhookURL: p.WebhookURL, Domain: p.AckDomain}
			break
		}
	}
	return f
}

// trusted tells whether a message may join an incident by its ticket tag
// alone, whoever its requester. Only what is authenticated counts: the
// staff submission listener's AUTH, or a good signature over the whole
// message by a known key that carries the From address (the team's own
// key for mail from the team's address). A From header naming the team,
// a bounce quoting our message (it threads by the unguessable Message-ID
// of the outbox row it returns, or not at all) and a signature over part
// of the text earn nothing. DKIM/SPF/DMARC come with sender
// authentication.
func trusted(msg *store.Message, rep *parse.Report) bool {
	if msg.Channel == store.ChannelSubmission {
		return true
	}
	return rep.Signature.Authenticated()
}

// batchSize is how many rows a worker claims and files in one transaction.
// Under load it turns n commits into one; with a trickle a batch is one row
// and nothing waits.
const batchSize = 8

// batchBytes bounds a batch by the size of its messages as well: a batch
// keeps its first message whatever its size, and the following ones while
// the total stays within it; the rest go back to the queue for the next
// claim. A huge report is then parsed and filed on its own, and the small
// ones claimed with it do not wait for it.
const batchBytes = 4 << 20

// withinBytes is how many of the claimed messages (in order) a batch
// keeps: at least one, then as many as fit in batchBytes.
func withinBytes(msgs []*store.Message) int {
	total := int64(0)
	for i, m := range msgs {
		size := int64(0)
		if m != nil {
			size = max(m.Size, int64(len(m.Raw)))
		}
		if i > 0 && total+size > batchBytes {
			return i
		}
		total += size
	}
	return len(msgs)
}

// Run claims and processes rows with n workers until ctx ends. In-flight
// messages finish (they are short); unclaimed rows stay for the next start.
func (p *Processor) Run(ctx context.Context, worker string, n int, wake <-chan struct{}) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("%s/%d", worker, i)
			for ctx.Err() == nil {
				start := time.Now()
				cl, msgs, err := p.Store.ClaimMessages(context.WithoutCancel(ctx), id, batchSize, p.Lease, p.MaxAttempts)
				if err != nil {
					p.log().Error("claim", "err", err)
					sleep(ctx, time.Second, nil)
					continue
				}
				if len(cl) == 0 {
					sleep(ctx, 500*time.Millisecond, wake)
					continue
				}
				// Finish the batch even when asked to stop: it is short, and
				// its result is committed in one transaction.
				if k := withinBytes(msgs); k < len(cl) {
					back := make([]int64, 0, len(cl)-k)
					for _, c := range cl[k:] {
						back = append(back, c.SpoolID)
					}
					if err := p.Store.Release(context.WithoutCancel(ctx), id, back); err != nil {
						p.log().Warn("release", "err", err) // their leases run out instead
					}
					cl, msgs = cl[:k], msgs[:k]
				}
				ids := make([]int64, len(cl))
				for i, c := range cl {
					ids[i] = c.SpoolID
				}
				p.processBatch(context.WithoutCancel(ctx), ids, msgs, start)
			}
		}(i)
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}
