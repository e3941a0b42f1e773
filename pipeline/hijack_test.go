package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// TestNobodyHijacksATicket: a stranger cannot add to another reporter's
// incident by naming our acknowledgement's Message-ID, by forging the
// team's From, by a fake bounce, or by pasting a public clearsigned
// document of a known key under their own text. What is authenticated
// (the submission listener, the real Message-ID of a message we sent)
// still threads.
func TestNobodyHijacksATicket(t *testing.T) {
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	keys, err := crypto.LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := parse.Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org"}, OwnDomains: []string{"example.org"}, TicketPrefix: "CSIRT"}
	proc := &Processor{Store: s, Keys: keys, ParseOpts: opts, AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute, Log: quietLogger()}
	n := 0
	file := func(channel, mailFrom, raw string) store.FileResult {
		t.Helper()
		n++
		return spoolAndProcess(t, proc, &store.Message{Channel: channel, MailFrom: mailFrom, Raw: []byte(strings.ReplaceAll(raw, "\n", "\r\n"))})
	}

	victim := file(store.ChannelSMTP, "victim@reporter.example", `From: Victim <victim@reporter.example>
To: csirt@example.org
Subject: Phishing site at 192.0.2.10
Message-ID: <v1@reporter.example>

Please look at http://192.0.2.10/login.
`)
	if victim.Outcome != store.OutcomeNew || victim.AckID == 0 {
		t.Fatalf("victim's report: %+v", victim)
	}
	rows, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(rows) != 1 {
		t.Fatalf("outbox: %v %d", err, len(rows))
	}
	ackID := rows[0].MessageID
	// Our Message-IDs carry at least 96 random bits besides the ticket.
	if !regexp.MustCompile(`\.[0-9a-f]{24}@`).MatchString(ackID) {
		t.Fatalf("acknowledgement Message-ID %s has no unguessable part", ackID)
	}
	ticket := victim.Ticket
	slug := strings.ToLower(strings.ReplaceAll(ticket, "#", "-"))
	guessed := fmt.Sprintf("<%s.ack.%d@csirt.example.org>", slug, victim.ReportID)

	stranger := func(name string, res store.FileResult) {
		t.Helper()
		if res.Outcome == store.OutcomeAttached || res.Ticket == ticket {
			t.Errorf("%s: joined %s (%s)", name, ticket, res.Note)
		}
	}
	// (a) References naming the acknowledgement's Message-ID as the old
	// format made it.
	stranger("guessed References", file(store.ChannelSMTP, "evil@attacker.example", `From: evil@attacker.example
To: csirt@example.org
Subject: Re: your report
Message-ID: <a1@attacker.example>
In-Reply-To: `+guessed+`
References: `+guessed+`

False positive, please close. See http://198.51.100.66/.
`))
	// (b) From forged as the team's own address, with the ticket tag.
	forged := `From: Example CSIRT <csirt@example.org>
To: csirt@example.org
Subject: [` + ticket + `] resolved
Message-ID: <b%d@attacker.example>

False positive, please close.
`
	stranger("forged team From", file(store.ChannelSMTP, "csirt@example.org", fmt.Sprintf(forged, 1)))
	// (c) A fake bounce quoting our acknowledgement with a guessed
	// Message-ID.
	bounce := `From: MAILER-DAEMON@mx.attacker.example
To: csirt@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <c%d@mx.attacker.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The mail system: false positive, please close 203.0.113.99.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.attacker.example
Final-Recipient: rfc822; victim@reporter.example
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

From: Example CSIRT <csirt@example.org>
To: <victim@reporter.example>
Subject: [` + ticket + `] Re: Phishing site at 192.0.2.10
Message-ID: %s

--B--
`
	stranger("fake bounce", file(store.ChannelSMTP, "", fmt.Sprintf(bounce, 1, guessed)))
	// (d) Attacker text above a pasted clearsigned public document of the
	// team's own key.
	cs, err := keys.Clearsign([]byte("Contact: mailto:csirt@example.org\nExpires: 2027-12-01T00:00:00Z\n"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pasted := fmt.Sprintf(forged, 2) + "\nIndicators: 203.0.113.50\n\n" + string(cs)
	id, _ := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(pasted)})
	msg, _ := s.GetMessage(ctx, id)
	rep, _, _ := proc.analyzeSafe(msg)
	if rep.Signature.Status != "good" || rep.Signature.Scope != "part" || !strings.Contains(rep.Signature.SignedPart, "clearsigned block") {
		t.Errorf("a pasted clearsigned block: signature %+v, want good over part of the message", rep.Signature)
	}
	if proc.filing(msg, rep).Trusted {
		t.Error("a signature over part of the message made it trusted")
	}
	_, _ = s.Claim(ctx, "t", 1, time.Minute, 3)
	res, err := proc.Process(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	stranger("pasted clearsigned document", res)

	// What is authenticated still threads: the team through the
	// submission listener, a bounce of the message we really sent, and
	// the team's own signature over the whole text.
	if res := file(store.ChannelSubmission, "analyst@example.org", fmt.Sprintf(forged, 3)); res.Ticket != ticket {
		t.Errorf("staff through the submission listener: %+v", res)
	}
	if res := file(store.ChannelSMTP, "", fmt.Sprintf(bounce, 2, ackID)); res.Ticket != ticket {
		t.Errorf("a real bounce of our acknowledgement: %+v", res)
	}
	whole, _ := keys.Clearsign([]byte("Closing: the host is clean.\n"), time.Now())
	signed := "From: Example CSIRT <csirt@example.org>\nTo: csirt@example.org\nSubject: [" + ticket + "] closing\nMessage-ID: <d1@example.org>\n\n" + string(whole)
	if res := file(store.ChannelSMTP, "csirt@example.org", signed); res.Ticket != ticket {
		t.Errorf("the team's own signature over the whole text: %+v", res)
	}
}
