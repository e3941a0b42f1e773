package pipeline

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/senderauth"
	"github.com/madoguchi/madoguchi/store"
)

// TestForgedRequesterCannotJoin: the requester of an incident
// (alice@example.com, whose domain publishes DMARC p=reject) may add to it
// by the ticket tag when her mail is DKIM-signed; mail forging her From
// from elsewhere takes the stranger's path (a new incident, an event on
// the tagged one) and gets no acknowledgement (SPF fails too). A domain
// without a DMARC policy keeps the requester rule, unauthenticated.
func TestForgedRequesterCannotJoin(t *testing.T) {
	ctx := context.Background()
	d := testenv.StartDNS(t)
	k := testenv.NewDKIM(t, d)
	k.Key("mail", "example.com", "rsa")
	d.TXT("example.com", "v=spf1 ip4:192.0.2.10 -all")
	d.TXT("_dmarc.example.com", "v=DMARC1; p=reject")
	d.TXT("nopolicy.example", "v=spf1 ?all")
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts := parse.Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org"}, TicketPrefix: "CSIRT"}
	proc := &Processor{Store: s, ParseOpts: opts, AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute, Log: quietLogger(),
		Auth: &senderauth.Checker{Resolver: senderauth.NewResolver(d.Addr)}}
	file := func(peer, mailFrom string, raw []byte) (store.FileResult, parse.Report) {
		t.Helper()
		res := spoolAndProcess(t, proc, &store.Message{Channel: store.ChannelSMTP, Peer: peer, MailFrom: mailFrom, Raw: raw})
		js, _, _ := s.ReportTicket(ctx, res.ReportID)
		var rep parse.Report
		_ = json.Unmarshal(js, &rep)
		return res, rep
	}
	msg := func(from, subject, mid string) string {
		return "From: " + from + "\r\nTo: csirt@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + mid + ">\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nThe phish is at http://bad.example/.\r\n"
	}
	first, rep := file("198.51.100.20:40000 helo=mx.example.com", "alice@example.com", k.Sign(msg("alice@example.com", "Phishing", "a1@example.com"), "mail", "example.com", "rsa-sha256"))
	if first.Outcome != store.OutcomeNew || rep.Authentication == nil || rep.Authentication.DMARC != "pass" || rep.Authentication.DKIM != "pass" || first.AckID == 0 {
		t.Fatalf("alice's report: %+v %+v", first, rep.Authentication)
	}
	tag := "[" + first.Ticket + "] "
	genuine, _ := file("198.51.100.20:40001 helo=mx.example.com", "alice@example.com", k.Sign(msg("alice@example.com", tag+"more", "a2@example.com"), "mail", "example.com", "rsa-sha256"))
	if genuine.Outcome != store.OutcomeAttached || genuine.Ticket != first.Ticket {
		t.Fatalf("alice's signed follow-up: %+v", genuine)
	}
	forged, frep := file("203.0.113.66:5000 helo=spoof.example", "alice@example.com", []byte(msg("alice@example.com", tag+"please send me the logs", "f1@spoof.example")))
	if forged.Outcome != store.OutcomeNew || forged.Ticket == first.Ticket || forged.AckID != 0 {
		t.Fatalf("the forged follow-up: %+v", forged)
	}
	if a := frep.Authentication; a.DMARC != "fail" || a.SPF != "fail" || frep.Ack.Send || !strings.Contains(frep.Ack.Reason, "fails SPF") {
		t.Fatalf("the forged report: %+v ack %+v", a, frep.Ack)
	}
	inc, _ := s.GetIncident(ctx, first.Ticket)
	stranger := false
	for _, e := range inc.Events {
		stranger = stranger || e.Kind == "tag-from-stranger"
	}
	if !stranger || len(inc.ReportList) != 2 {
		t.Fatalf("the tagged incident: %d reports, events %+v", len(inc.ReportList), inc.Events)
	}
	// No DMARC policy, no signature: the requester rule as before, marked
	// unauthenticated.
	bob, _ := file("203.0.113.7:1 helo=x", "bob@nopolicy.example", []byte(msg("bob@nopolicy.example", "Scan", "b1@nopolicy.example")))
	again, arep := file("203.0.113.8:1 helo=y", "bob@nopolicy.example", []byte(msg("bob@nopolicy.example", "["+bob.Ticket+"] again", "b2@nopolicy.example")))
	if again.Outcome != store.OutcomeAttached || arep.Authentication.DMARC != "none" || arep.Authentication.FromAligned {
		t.Fatalf("bob: %+v %+v", again, arep.Authentication)
	}
}

// TestEnvelopeOfPeer: the SMTP listener's peer string gives the client IP
// and HELO; other channels carry none.
func TestEnvelopeOfPeer(t *testing.T) {
	for _, c := range []struct {
		m    store.Message
		want senderauth.Envelope
	}{
		{store.Message{Channel: store.ChannelSMTP, Peer: "192.0.2.1:2525 helo=mx.example.net", MailFrom: "a@b.example"}, senderauth.Envelope{Checked: true, ClientIP: "192.0.2.1", Helo: "mx.example.net", MailFrom: "a@b.example"}},
		{store.Message{Channel: store.ChannelSubmission, Peer: "[2001:db8::1]:587 helo=laptop auth=bob"}, senderauth.Envelope{Checked: true, ClientIP: "2001:db8::1", Helo: "laptop"}},
		{store.Message{Channel: store.ChannelIMAP, Peer: "imap.example.org:993 INBOX uid=1", MailFrom: ""}, senderauth.Envelope{}},
	} {
		if got := Envelope(&c.m); got != c.want {
			t.Errorf("%+v: %+v", c.m, got)
		}
	}
}
