package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/constituency"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// TestFilingMatchesConstituents: what a report names is matched at filing
// (indicators, a forward's originating IP, an ARF report's source IP);
// who wrote it (the reporter's address, domain and IP, and a constituent
// the reporter writes for) is not.
func TestFilingMatchesConstituents(t *testing.T) {
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs, err := constituency.Parse("c.yaml", []byte(`constituents:
  - id: spam-isp
    networks: [198.51.100.0/24]
    contacts: [{address: abuse@isp.example}]
  - id: meds
    domains: [cheap-meds.example]
    contacts: [{address: security@cheap-meds.example}]
  - id: fbl
    domains: [mbp.example.com]
    networks: [192.0.2.160/32]
    contacts: [{address: postmaster@mbp.example.com}]
  - id: reporter-isp
    networks: [203.0.113.0/24]
    notify: never
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := constituency.New(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := parse.Options{TeamName: "Example CSIRT", OwnAddresses: []string{"csirt@example.org", "abuse@example.org"}, OwnDomains: []string{"example.org"}, TicketPrefix: "CSIRT"}
	proc := &Processor{Store: s, ParseOpts: opts, AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute, Log: quietLogger(),
		Constituents: func() *constituency.Set { return set }}
	file := func(raw []byte) []store.ConstituentHits {
		t.Helper()
		res := spoolAndProcess(t, proc, &store.Message{Channel: store.ChannelSMTP, MailFrom: "x@example.net", Raw: raw})
		inc, err := s.GetIncident(ctx, res.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		return inc.Constituents
	}
	arf, err := os.ReadFile("../testdata/corpus/messages/17-arf-feedback-report.eml")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(file(arf))
	// The feedback loop (the reporter, at 192.0.2.160, in mbp.example.com)
	// is not a match; the source IP and the spammer's domain are.
	want := `[{"id":"meds","indicators":[{"kind":"domain","value":"cheap-meds.example"},{"kind":"url","value":"http://cheap-meds.example/buy?id=77"},{"kind":"email","value":"promo@cheap-meds.example"}]},` +
		`{"id":"spam-isp","indicators":[{"kind":"ipv4","value":"198.51.100.57"}]}]`
	if string(got) != want {
		t.Fatalf("ARF:\n got %s\nwant %s", got, want)
	}

	fwd := strings.ReplaceAll(`Received: from [203.0.113.9] by mx.reporter.example with ESMTPSA; Mon, 15 Jun 2026 10:00:00 +0000
From: Reporter <someone@reporter.example>
To: csirt@example.org
Subject: Fwd: phishing
Message-ID: <fw1@reporter.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

The attached phish came to us. Reply to someone@reporter.example.

--b
Content-Type: message/rfc822

Received: from bad.example (bad.example [198.51.100.200]) by mx.reporter.example with SMTP; Mon, 15 Jun 2026 09:00:00 +0000
From: bank <support@bank.example>
Subject: verify
Message-ID: <p@bad.example>

Log in now.
--b--
`, "\n", "\r\n")
	got, _ = json.Marshal(file([]byte(fwd)))
	if string(got) != `[{"id":"spam-isp","indicators":[{"kind":"ipv4","value":"198.51.100.200"}]}]` {
		t.Fatalf("forward: %s", got)
	}
}
