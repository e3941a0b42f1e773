package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/store"
)

// IMAPConfig is one polled mailbox.
type IMAPConfig struct {
	Address  string // host:port
	TLS      string // implicit | starttls | none (none: loopback only, checked by config)
	Username string
	Password string
	// OAuth2, when set, authenticates with a bearer token (XOAUTH2 or
	// OAUTHBEARER, as the server offers) instead of Password.
	OAuth2  *oauth.Source
	Mailbox string
	// ProcessedMailbox receives each message once it is spooled. Empty:
	// the message stays and is flagged \Seen instead.
	ProcessedMailbox string
	// PollInterval is how often to look when the server has no IDLE, and
	// the longest an IDLE lasts before a fresh look (servers drop idle
	// connections after ~30 minutes; RFC 2177 asks to re-issue within 29).
	PollInterval time.Duration
	TLSConfig    *tls.Config
	// MaxMessage: a larger message is left in the mailbox, never moved or
	// flagged, and staff get an incident naming it; raising the limit
	// lets a later pass file it.
	MaxMessage int64
}

// IMAPStore is what the poller needs of the store.
type IMAPStore interface {
	GetIMAPState(ctx context.Context, key string) (store.IMAPState, error)
	SetIMAPState(ctx context.Context, key string, st store.IMAPState) error
	SpoolIMAP(ctx context.Context, m *store.Message, key string, st store.IMAPState, uid uint32) (int64, error)
	HoldIMAPOversize(ctx context.Context, notice *store.Message, key string, st store.IMAPState, uid uint32, size int64) (int64, error)
	IMAPOversize(ctx context.Context, key string, uidValidity uint32) (map[uint32]bool, error)
	LockMailbox(ctx context.Context, key string) (release func(), ok bool, err error)
}

// Poller fetches new messages of one mailbox, spools each, and only after
// the spool commit moves it to ProcessedMailbox (or flags it \Seen).
//
// The store keeps UIDVALIDITY and the last spooled UID, advanced in the
// spool transaction, so a restart neither skips nor re-spools. A message
// spooled but not yet moved when the daemon died is moved on the next pass
// without being spooled again. When UIDVALIDITY changes (the mailbox was
// recreated), the poller starts over at UID 1 under the new value:
// messages still in the mailbox are spooled again, and the store's
// Message-ID de-duplication keeps them from filing twice.
type Poller struct {
	Cfg     IMAPConfig
	Store   IMAPStore
	Log     *slog.Logger
	Spooled chan<- struct{}
	// OnPass, when set, is called after each pass over the mailbox (tests).
	OnPass func(spooled int, err error)
	// Metrics count what the poller does (Run makes a set of its own when
	// nil).
	Metrics *Metrics
}

// Key names the mailbox in the store and in the lock.
func (p *Poller) Key() string {
	return p.Cfg.Username + "@" + p.Cfg.Address + "/" + p.Cfg.Mailbox
}

func (p *Poller) interval() time.Duration {
	if p.Cfg.PollInterval > 0 {
		return p.Cfg.PollInterval
	}
	return time.Minute
}

// Run polls until ctx ends, reconnecting with exponential back-off (1 s to
// 5 min). Only one daemon polls a mailbox at a time: the others wait for the
// lock and take over when its holder dies.
func (p *Poller) Run(ctx context.Context) {
	if p.Metrics == nil {
		p.Metrics = NewMetrics(nil)
	}
	backoff := time.Second
	for ctx.Err() == nil {
		release, ok, err := p.Store.LockMailbox(ctx, p.Key())
		if err != nil || !ok {
			if err != nil {
				p.Log.Warn("imap: lock", "mailbox", p.Key(), "err", err)
			}
			sleep(ctx, p.interval())
			continue
		}
		err = p.session(ctx, func() { backoff = time.Second })
		release()
		if ctx.Err() != nil {
			return
		}
		p.Metrics.IMAPErrors.WithLabelValues(p.Key()).Inc()
		var refused *oauth.PermanentError
		if errors.As(err, &refused) {
			// The token source has said so once; the retries are quiet.
			p.Log.Debug("imap: credential refused, retrying", "mailbox", p.Key(), "in", backoff)
		} else {
			p.Log.Warn("imap: session ended, reconnecting", "mailbox", p.Key(), "err", err, "in", backoff)
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, 5*time.Minute)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (p *Poller) dial(h *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	opts := &imapclient.Options{TLSConfig: p.Cfg.TLSConfig, UnilateralDataHandler: h,
		Dialer: &net.Dialer{Timeout: 30 * time.Second}}
	switch p.Cfg.TLS {
	case "implicit", "":
		return imapclient.DialTLS(p.Cfg.Address, opts)
	case "starttls":
		return imapclient.DialStartTLS(p.Cfg.Address, opts)
	case "none":
		return imapclient.DialInsecure(p.Cfg.Address, opts)
	}
	return nil, fmt.Errorf("imap: tls %q: want implicit, starttls or none", p.Cfg.TLS)
}

// session is one connection: log in, select, then pass over the mailbox,
// wait (IDLE or the poll interval), and again, until an error or ctx ends.
func (p *Poller) session(ctx context.Context, connected func()) error {
	exists := make(chan struct{}, 1)
	h := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- struct{}{}:
				default:
				}
			}
		},
	}
	c, err := p.dial(h)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if err := p.login(ctx, c); err != nil {
		return err
	}
	sel, err := c.Select(p.Cfg.Mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %s: %w", p.Cfg.Mailbox, err)
	}
	connected()
	for {
		n, err := p.pass(ctx, c, sel.UIDValidity)
		if err == nil {
			p.Metrics.IMAPLastPass.WithLabelValues(p.Key()).SetToCurrentTime()
		}
		if p.OnPass != nil {
			p.OnPass(n, err)
		}
		if err != nil {
			return err
		}
		if err := p.wait(ctx, c, exists); err != nil {
			return err
		}
	}
}

// login authenticates: LOGIN with the password, or a bearer token. A
// token the server refuses is dropped and a fresh one tried once (it may
// have been revoked early, or the clocks disagree).
func (p *Poller) login(ctx context.Context, c *imapclient.Client) error {
	if p.Cfg.OAuth2 == nil {
		if err := c.Login(p.Cfg.Username, p.Cfg.Password).Wait(); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		return nil
	}
	mechs := c.Caps().AuthMechanisms()
	mech := oauth.Pick(mechs)
	var err error
	for try := 0; try < 2; try++ {
		var tok string
		if tok, err = p.Cfg.OAuth2.Token(ctx); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		sc, err2 := oauth.NewClient(mech, p.Cfg.Username, tok)
		if err2 != nil {
			return fmt.Errorf("login: %w (the server offers %v)", err2, mechs)
		}
		if err = c.Authenticate(sc); err == nil {
			return nil
		}
		p.Cfg.OAuth2.Invalidate()
	}
	return fmt.Errorf("login (%s): %w", mech, err)
}

// wait returns when the mailbox may have news: an EXISTS pushed during
// IDLE, or the poll interval passed (NOOP keeps the connection alive and
// reports news too).
func (p *Poller) wait(ctx context.Context, c *imapclient.Client, exists <-chan struct{}) error {
	select {
	case <-exists: // arrived during the last pass
		return nil
	default:
	}
	if !c.Caps().Has(imap.CapIdle) {
		sleep(ctx, p.interval())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.Noop().Wait()
	}
	idle, err := c.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	t := time.NewTimer(min(p.interval(), 25*time.Minute))
	defer t.Stop()
	select {
	case <-exists:
	case <-t.C:
	case <-ctx.Done():
	case <-c.Closed():
		// The server went away during IDLE (restarted, the connection
		// dropped): reconnect now, not when the interval ends.
		return errors.New("idle: the connection closed")
	}
	if err := idle.Close(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return ctx.Err()
}

// pass spools what is new and moves (or flags) what is spooled.
func (p *Poller) pass(ctx context.Context, c *imapclient.Client, uidValidity uint32) (int, error) {
	key := p.Key()
	st, err := p.Store.GetIMAPState(ctx, key)
	if err != nil {
		return 0, err
	}
	if st.UIDValidity != uidValidity {
		if st.UIDValidity != 0 {
			p.Log.Warn("imap: UIDVALIDITY changed; starting over (duplicates are caught by Message-ID)",
				"mailbox", key, "was", st.UIDValidity, "now", uidValidity)
		}
		st = store.IMAPState{UIDValidity: uidValidity}
		if err := p.Store.SetIMAPState(ctx, key, st); err != nil {
			return 0, err
		}
	}
	held, err := p.Store.IMAPOversize(ctx, key, uidValidity)
	if err != nil {
		return 0, err
	}
	p.Metrics.IMAPHeld.WithLabelValues(key).Set(float64(len(held)))
	// In move mode every message still in the mailbox is new, held for its
	// size, or spooled-but-not-moved; in flag mode only UIDs past the last
	// one and the held ones are looked at.
	crit := &imap.SearchCriteria{}
	if p.Cfg.ProcessedMailbox == "" {
		var set imap.UIDSet
		set.AddRange(imap.UID(st.LastUID+1), 0)
		for uid := range held {
			set.AddNum(imap.UID(uid))
		}
		crit.UID = []imap.UIDSet{set}
	}
	found, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search: %w", err)
	}
	var done imap.UIDSet
	spooled := 0
	for _, uid := range found.AllUIDs() {
		if uint32(uid) <= st.LastUID && !held[uint32(uid)] {
			if p.Cfg.ProcessedMailbox != "" {
				done.AddNum(uid) // spooled before a crash, not yet moved
			}
			continue
		}
		raw, size, err := p.fetch(c, uid)
		if err != nil {
			return spooled, err
		}
		next := store.IMAPState{UIDValidity: uidValidity, LastUID: max(st.LastUID, uint32(uid))}
		if raw == nil && size > 0 {
			if !held[uint32(uid)] {
				if err := p.hold(ctx, c, uid, size, next); err != nil {
					return spooled, err
				}
				st = next
			}
			continue // left in the mailbox until the limit allows it
		}
		if raw == nil {
			continue // vanished
		}
		start := time.Now()
		id, err := p.Store.SpoolIMAP(ctx, &store.Message{Channel: store.ChannelIMAP, RcptTo: []string{p.Cfg.Username},
			Peer: p.Cfg.Address + " " + p.Cfg.Mailbox + fmt.Sprintf(" uid=%d uidvalidity=%d", uid, uidValidity), Raw: raw}, key, next, uint32(uid))
		if err != nil {
			p.Metrics.Refused.WithLabelValues(store.ChannelIMAP, "spool-error").Inc()
			// The message stays in the mailbox; the session is retried.
			return spooled, fmt.Errorf("spool uid %d: %w", uid, err)
		}
		st = next
		spooled++
		p.Metrics.SpoolSeconds.WithLabelValues(store.ChannelIMAP).Observe(time.Since(start).Seconds())
		p.Metrics.Received.WithLabelValues(store.ChannelIMAP).Inc()
		p.Metrics.Bytes.WithLabelValues(store.ChannelIMAP).Add(float64(len(raw)))
		p.Log.Info("spooled", "spool", id, "channel", "imap", "mailbox", key, "uid", uid, "bytes", len(raw))
		if p.Spooled != nil {
			select {
			case p.Spooled <- struct{}{}:
			default:
			}
		}
		done.AddNum(uid)
	}
	if len(done) == 0 {
		return spooled, nil
	}
	return spooled, p.finish(c, done)
}

// fetch returns the message uid. A message over the size limit is not
// read: raw is nil and size is its size. Both zero: it vanished.
func (p *Poller) fetch(c *imapclient.Client, uid imap.UID) (raw []byte, size int64, err error) {
	if p.Cfg.MaxMessage > 0 {
		msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			return nil, 0, fmt.Errorf("fetch size uid %d: %w", uid, err)
		}
		if len(msgs) == 1 && msgs[0].RFC822Size > p.Cfg.MaxMessage {
			return nil, msgs[0].RFC822Size, nil
		}
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		return nil, 0, fmt.Errorf("fetch uid %d: %w", uid, err)
	}
	if len(msgs) == 0 || len(msgs[0].BodySection) == 0 {
		return nil, 0, nil
	}
	return msgs[0].BodySection[0].Bytes, int64(len(msgs[0].BodySection[0].Bytes)), nil
}

// maxNoticeHeader bounds the header read of a message held for its size.
const maxNoticeHeader = 64 << 10

// hold leaves the over-size message uid in the mailbox and records it, in
// one transaction with a notice that staff see as an incident: which
// mailbox and UID, the size and limit, and its From, Subject, Date and
// Message-ID (read from its header, with PEEK, so it stays unseen).
func (p *Poller) hold(ctx context.Context, c *imapclient.Client, uid imap.UID, size int64, next store.IMAPState) error {
	p.Metrics.Refused.WithLabelValues(store.ChannelIMAP, "size").Inc()
	hdr := map[string]string{}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject", "Date", "Message-ID"},
			Partial: &imap.SectionPartial{Offset: 0, Size: maxNoticeHeader}}}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch header uid %d: %w", uid, err)
	}
	if len(msgs) == 1 && len(msgs[0].BodySection) > 0 {
		if m, err := mail.ReadMessage(bytes.NewReader(append(msgs[0].BodySection[0].Bytes, "\r\n"...))); err == nil {
			dec := new(mime.WordDecoder)
			for _, k := range []string{"From", "Subject", "Date", "Message-ID"} {
				v, err := dec.DecodeHeader(m.Header.Get(k))
				if err != nil {
					v = m.Header.Get(k)
				}
				hdr[k] = oneLine(v, 300)
			}
		}
	}
	notice := oversizeNotice(p.Key(), p.Cfg.Address, uint32(uid), next.UIDValidity, size, p.Cfg.MaxMessage, hdr)
	id, err := p.Store.HoldIMAPOversize(ctx, &store.Message{Channel: store.ChannelIMAP, RcptTo: []string{p.Cfg.Username},
		Peer: p.Cfg.Address + " " + p.Cfg.Mailbox + fmt.Sprintf(" uid=%d uidvalidity=%d oversize", uid, next.UIDValidity), Raw: notice},
		p.Key(), next, uint32(uid), size)
	if err != nil {
		return fmt.Errorf("hold uid %d: %w", uid, err)
	}
	p.Log.Error("imap: message over the size limit left in the mailbox; staff notified", "mailbox", p.Key(), "uid", uid,
		"bytes", size, "limit", p.Cfg.MaxMessage, "from", hdr["From"], "subject", hdr["Subject"], "notice_spool", id)
	if p.Spooled != nil {
		select {
		case p.Spooled <- struct{}{}:
		default:
		}
	}
	return nil
}

// oneLine makes a header value safe to repeat in a header: one line, at
// most n bytes (cut at a rune boundary).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// oversizeNotice is the message the gateway files for a message it left in
// a mailbox for its size: from MAILER-DAEMON (so it is never answered),
// with a Message-ID of its own made from the mailbox and UID (a notice
// spooled twice files once).
func oversizeNotice(key, server string, uid, uidValidity uint32, size, limit int64, hdr map[string]string) []byte {
	sum := sha256.Sum256([]byte(key))
	host, _, _ := net.SplitHostPort(server)
	if host == "" {
		host = "localhost"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", "Message over the size limit left in "+key+": "+hdr["Subject"]))
	fmt.Fprintf(&b, "Message-ID: <imap-oversize.%x.%d.%d@madoguchi.invalid>\r\n", sum[:8], uidValidity, uid)
	fmt.Fprintf(&b, "Date: %s\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "A message in an IMAP mailbox is over the size limit and was left there: it is\r\n"+
		"not filed, not moved and not marked as seen. Raise the limit\r\n"+
		"(intake.smtp.max_message_bytes) and the next pass files it, or handle it by hand.\r\n\r\n"+
		"Mailbox:     %s\r\nUID:         %d (UIDVALIDITY %d)\r\nSize:        %d bytes (limit %d)\r\n"+
		"From:        %s\r\nSubject:     %s\r\nDate:        %s\r\nMessage-ID:  %s\r\n",
		key, uid, uidValidity, size, limit, hdr["From"], hdr["Subject"], hdr["Date"], hdr["Message-ID"])
	return b.Bytes()
}

// finish moves the spooled messages to the processed mailbox (MOVE, or
// COPY + \Deleted + UID EXPUNGE on servers without it) or flags them \Seen.
func (p *Poller) finish(c *imapclient.Client, uids imap.UIDSet) error {
	if p.Cfg.ProcessedMailbox == "" {
		err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		if err != nil {
			return fmt.Errorf("flag seen: %w", err)
		}
		return nil
	}
	if c.Caps().Has(imap.CapMove) {
		if _, err := c.Move(uids, p.Cfg.ProcessedMailbox).Wait(); err != nil {
			return fmt.Errorf("move: %w", err)
		}
		return nil
	}
	if _, err := c.Copy(uids, p.Cfg.ProcessedMailbox).Wait(); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("flag deleted: %w", err)
	}
	if c.Caps().Has(imap.CapUIDPlus) {
		return c.UIDExpunge(uids).Close()
	}
	return errors.Join(c.Expunge().Close())
}
