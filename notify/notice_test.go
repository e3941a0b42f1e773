package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/pipeline"
	"github.com/madoguchi/madoguchi/store"
)

// arf is a feedback-loop report (RFC 5965) of one spam run from source.
func arf(i int, source string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: Feedback Loop <fbl@mbp.example.com>
To: abuse@example.org
Subject: FW: abuse report %[1]d
Message-ID: <arf-%[1]d@fbl.mbp.example.com>
Date: Mon, 15 Jun 2026 18:22:10 +0000
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b"

--b
Content-Type: text/plain

This is an email abuse report for a message received from IP %[2]s.
--b
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: FBL/1
Version: 1
Source-IP: %[2]s
Arrival-Date: Mon, 15 Jun 2026 17:58:31 +0000
Reported-Domain: cheap-meds.example

--b
Content-Type: message/rfc822

Received: from spam.example (unknown [%[2]s]) by mx.mbp.example.com with SMTP; Mon, 15 Jun 2026 17:58:31 +0000
From: promo@cheap-meds.example
Subject: Best prices %[1]d

Order now at http://cheap-meds.example/buy?id=%[1]d
--b--
`, i, source), "\n", "\r\n"))
}

// noticeContent is a notice entity's text and, when it has one, its CSV.
func noticeContent(t *testing.T, entity []byte) (text string, rows [][]string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(entity))
	if err != nil {
		t.Fatal(err)
	}
	decode := func(h interface{ Get(string) string }, r io.Reader) []byte {
		var b []byte
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			b, _ = io.ReadAll(quotedprintable.NewReader(r))
		case "base64":
			b, _ = io.ReadAll(base64.NewDecoder(base64.StdEncoding, r))
		default:
			b, _ = io.ReadAll(r)
		}
		return b
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/mixed" {
		return string(decode(msg.Header, msg.Body)), nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			break
		}
		b := decode(p.Header, p)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/csv") {
			rows, err = csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
		} else {
			text = string(b)
		}
	}
	return text, rows
}

// TestNoticesAggregatedSignedEncrypted: a burst of 200 feedback-loop
// reports naming sources of two constituents and the domain of a third
// gives one notice per constituent once the window has passed, not one
// per report; each carries only its constituent's indicators (in a CSV
// past 20), is signed, and is encrypted where the contact has a key file,
// as gpg checks; the constituent that wants staff to decide waits until
// staff release it.
func TestNoticesAggregatedSignedEncrypted(t *testing.T) {
	testenv.Need(t, "gpg")
	ctx := context.Background()
	g := testenv.NewGPG(t)
	g.NewKey("Beta CERT <cert@beta.example>", true)
	betaPub := g.Must(nil, "--armor", "--export", "cert@beta.example")
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	g.Must(teamPub, "--import")
	betaKeys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(betaPub))
	if err != nil {
		t.Fatal(err)
	}

	f := newFixture(t, nil)
	cs, err := constituency.Parse("c.yaml", []byte(`constituents:
  - id: acme
    name: ACME Corp
    networks: [192.0.2.0/24]
    contacts: [{address: security@acme.example, language: ja}]
  - id: beta
    name: Beta ISP
    networks: ["198.51.100.0/24"]
    contacts: [{address: cert@beta.example, key_file: beta.asc}]
  - id: meds
    name: Meds Shop
    domains: [cheap-meds.example]
    contacts: [{address: security@cheap-meds.example}]
    notify: staff
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := constituency.New(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	sets := func() *constituency.Set { return set }
	proc := &pipeline.Processor{Store: f.s, ParseOpts: parse.Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org", "abuse@example.org"},
		OwnDomains: []string{"example.org"}, TicketPrefix: "CSIRT"}, AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Constituents: sets}
	for i := range 200 {
		source := fmt.Sprintf("192.0.2.%d", i/2)
		if i%2 == 1 {
			source = fmt.Sprintf("198.51.100.%d", i/2)
		}
		id, err := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, MailFrom: "fbl@mbp.example.com", Raw: arf(i, source)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Claim(ctx, "t", 1, time.Minute, 3); err != nil {
			t.Fatal(err)
		}
		if _, err := proc.Process(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	hasKey := func(addr string) bool { return addr == "cert@beta.example" }
	n := &Noticer{Store: f.s, Constituents: sets, Window: time.Hour, Domain: "csirt.example.org", HasKey: hasKey,
		Now: f.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if k, err := n.Once(ctx); err != nil || k != 0 {
		t.Fatalf("inside the window: %d notices, %v", k, err)
	}
	f.clock.Add(time.Hour)
	if k, err := n.Once(ctx); err != nil || k != 3 {
		t.Fatalf("after the window: %d notices, %v", k, err)
	}
	if k, err := n.Once(ctx); err != nil || k != 0 {
		t.Fatalf("again: %d notices, %v", k, err)
	}
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	w.ContactKeys = func(addr string) (openpgp.EntityList, bool) {
		if addr == "cert@beta.example" {
			return betaKeys, true
		}
		return nil, false
	}
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(want int) map[string][]byte {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		if len(ents) != want {
			t.Fatalf("%d messages written, want %d", len(ents), want)
		}
		out := map[string][]byte{}
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			m, _ := mail.ReadMessage(bytes.NewReader(b))
			out[m.Header.Get("To")] = b
		}
		return out
	}
	sent := read(2) // the ARF reports get no acknowledgement; meds waits
	check := func(rcpt, prefix string, wantEncrypted bool, subject string) {
		t.Helper()
		raw := sent[rcpt]
		if raw == nil {
			t.Fatalf("no notice to %s", rcpt)
		}
		m, _ := mail.ReadMessage(bytes.NewReader(raw))
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if !strings.Contains(subj, subject) || !strings.HasPrefix(subj, "[CSIRT#2026-") || !strings.Contains(subj, "(+99)") || m.Header.Get("Auto-Submitted") != "auto-generated" {
			t.Fatalf("%s: subject %q, headers %v", rcpt, subj, m.Header)
		}
		entity, encrypted := g.OpenPGPMIME(raw)
		if encrypted != wantEncrypted {
			t.Fatalf("%s: encrypted %v", rcpt, encrypted)
		}
		if wantEncrypted && bytes.Contains(raw, []byte(prefix)) {
			t.Fatalf("%s: an indicator outside the encryption", rcpt)
		}
		text, rows := noticeContent(t, entity)
		if len(rows) != 101 || strings.Join(rows[0], ",") != "ticket,kind,value,classification,reported_at" {
			t.Fatalf("%s: %d CSV rows", rcpt, len(rows))
		}
		for _, r := range rows[1:] {
			if r[1] != "ipv4" || !strings.HasPrefix(r[2], prefix) {
				t.Fatalf("%s: another constituent's indicator %v", rcpt, r)
			}
		}
		if !strings.Contains(text, "indicators.csv") || strings.Contains(text, "fbl@mbp.example.com") {
			t.Fatalf("%s: text %q", rcpt, text)
		}
	}
	check("<security@acme.example>", "192.0.2.", false, "TLP:AMBER ACME Corp 様に関するセキュリティ通知（100 件）")
	check("<cert@beta.example>", "198.51.100.", true, "TLP:AMBER Security notice for Beta ISP: 100 indicators")

	// meds: held until staff send it.
	rows, _ := f.s.ClaimOutbox(ctx, 10, time.Minute)
	if len(rows) != 0 {
		t.Fatalf("a held notice was claimed: %+v", rows)
	}
	inc, err := f.s.ListIncidents(ctx, store.Filter{Constituent: "meds", Limit: 1})
	if err != nil || len(inc) != 1 {
		t.Fatal(err)
	}
	det, _ := f.s.GetIncident(ctx, inc[0].Ticket)
	var held int64
	for _, o := range det.Outbox {
		if o.Kind == store.OutboxNotice && o.State == store.OutboxHeld {
			held = o.ID
		}
	}
	if held == 0 {
		// The notice's row is on its first incident; this one is the newest.
		all, _ := f.s.ListIncidents(ctx, store.Filter{Constituent: "meds", Limit: 500})
		first, _ := f.s.GetIncident(ctx, all[len(all)-1].Ticket)
		for _, o := range first.Outbox {
			if o.Kind == store.OutboxNotice && o.State == store.OutboxHeld {
				held = o.ID
			}
		}
	}
	if held == 0 {
		t.Fatal("no held notice for meds")
	}
	if err := f.s.ReleaseNotice(ctx, inc[0].Ticket, held, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	sent = read(3)
	entity, _ := g.OpenPGPMIME(sent["<security@cheap-meds.example>"])
	_, csvRows := noticeContent(t, entity)
	// Its domain, a URL and an address under it, named by each of the 200
	// reports.
	if len(csvRows) != 601 || csvRows[1][2] != "cheap-meds.example" {
		t.Fatalf("meds: %d rows, first %v", len(csvRows), csvRows[1])
	}
	det, _ = f.s.GetIncident(ctx, inc[0].Ticket)
	var evs []string
	for _, e := range det.Events {
		if e.Kind == "notice" && strings.Contains(e.Detail, fmt.Sprintf("notice %d ", held)) {
			evs = append(evs, e.Detail)
		}
	}
	if len(evs) != 3 || !strings.Contains(evs[0], "held for staff (meds is notify: staff)") || !strings.Contains(evs[1], "released by alice") || !strings.Contains(evs[2], "sent to security@cheap-meds.example") {
		t.Fatalf("events: %q", evs)
	}
}

// TestNoticesHeldOrNotSent: TLP:RED reports are held whatever the
// constituent says, in a notice of their own (the rest still goes); an
// encrypted report's indicators are held for a contact without a key;
// notify: never records the matches and sends nothing; the reporter is
// named in a notice only for TLP:CLEAR and GREEN reports.
func TestNoticesHeldOrNotSent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	cs, err := constituency.Parse("c.yaml", []byte(`constituents:
  - id: acme
    networks: [192.0.2.0/24]
    contacts: [{address: security@acme.example}]
  - id: quiet
    networks: [203.0.113.0/24]
    notify: never
`))
	if err != nil {
		t.Fatal(err)
	}
	set, _ := constituency.New(cs, nil)
	n := &Noticer{Store: f.s, Constituents: func() *constituency.Set { return set }, Domain: "csirt.example.org",
		HasKey: func(string) bool { return false }, Now: f.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	file := func(tlp, decryption, ip string) {
		t.Helper()
		f.n++
		id, err := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx", f.n))})
		if err != nil {
			t.Fatal(err)
		}
		js := fmt.Sprintf(`{"decryption":{"status":%q}}`, decryption)
		c := "acme"
		if strings.HasPrefix(ip, "203.") {
			c = "quiet"
		}
		if _, err := f.s.File(ctx, &store.Filing{SpoolID: id, MessageID: fmt.Sprintf("<m%d@x.example>", f.n), Sender: "rep@x.example", TLP: tlp,
			ReportJSON: []byte(js), Matches: []store.Match{{Constituent: c, Kind: "ipv4", Value: ip}}}); err != nil {
			t.Fatal(err)
		}
	}
	file("green", "none", "192.0.2.1")
	file("red", "none", "192.0.2.2")
	file("", "none", "203.0.113.3")
	if k, err := n.Once(ctx); err != nil || k != 2 {
		t.Fatalf("%d rows, %v", k, err)
	}
	rows, _ := f.s.ClaimOutbox(ctx, 10, time.Minute)
	if len(rows) != 1 || !strings.Contains(rows[0].Payload, `"value":"192.0.2.1"`) || strings.Contains(rows[0].Payload, "192.0.2.2") ||
		!strings.Contains(rows[0].Payload, `"reporter":"rep@x.example"`) || !strings.Contains(rows[0].Payload, `"tlp":"green"`) {
		t.Fatalf("the sendable notice: %+v", rows)
	}
	list, _ := f.s.ListIncidents(ctx, store.Filter{Limit: 10})
	for _, inc := range list {
		det, _ := f.s.GetIncident(ctx, inc.Ticket)
		var notes []string
		for _, e := range det.Events {
			if e.Kind == "notice" {
				notes = append(notes, e.Detail)
			}
		}
		note := strings.Join(notes, "|")
		switch inc.Constituents[0].Indicators[0].Value {
		case "192.0.2.2":
			if !strings.Contains(note, "TLP:RED; held for staff (TLP:RED: staff decide)") || !strings.Contains(det.Outbox[0].Payload, `"held":"TLP:RED: staff decide"`) ||
				strings.Contains(det.Outbox[0].Payload, "rep@x.example") {
				t.Fatalf("red: %q %+v", note, det.Outbox)
			}
		case "203.0.113.3":
			if note != "quiet is notify: never: 1 indicator recorded, no notice" || len(det.Outbox) != 0 {
				t.Fatalf("never: %q %+v", note, det.Outbox)
			}
		}
	}
	file("amber", "ok", "192.0.2.4")
	if k, err := n.Once(ctx); err != nil || k != 1 {
		t.Fatalf("%d rows, %v", k, err)
	}
	if rows, _ := f.s.ClaimOutbox(ctx, 10, time.Minute); len(rows) != 0 {
		t.Fatalf("an encrypted report's notice went to a contact without a key: %+v", rows)
	}
}
