package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// The golden corpus test: every fact manifest.json states about every
// message in testdata/corpus (a copy of ../shared/corpus) must hold.

type manifest struct {
	Team struct {
		Addresses []string `json:"addresses"`
		Website   string   `json:"website"`
	} `json:"team"`
	Preexisting []struct {
		Ticket    string `json:"ticket"`
		Subject   string `json:"subject"`
		Requester string `json:"requester"`
	} `json:"preexisting_tickets"`
	Messages []struct {
		File       string                  `json:"file"`
		Signature  struct{ Status string } `json:"signature"`
		Decryption struct{ Status string } `json:"decryption"`
		Charset    *string                 `json:"charset"`
		Language   *string                 `json:"language"`
		RSIT       struct {
			Acceptable []string `json:"acceptable"`
		} `json:"rsit"`
		Indicators struct {
			MustInclude    map[string][]string `json:"must_include"`
			MustNotInclude map[string][]string `json:"must_not_include"`
		} `json:"indicators"`
		Acknowledge struct {
			Expected bool   `json:"expected"`
			Rule     string `json:"rule"`
		} `json:"acknowledge"`
		BodyMustContain  []string          `json:"body_must_contain"`
		Forwarded        []json.RawMessage `json:"forwarded"`
		TLP              *string           `json:"tlp"`
		ProtectedSubject string            `json:"protected_subject"`
		Incident         struct {
			Action            string   `json:"action"`
			AcceptableActions []string `json:"acceptable_actions"`
			Ticket            string   `json:"ticket"`
			SameIncidentAs    string   `json:"same_incident_as"`
			DuplicateOf       string   `json:"duplicate_of"`
		} `json:"incident"`
	} `json:"messages"`
}

const corpusDir = "../testdata/corpus"

func loadManifest(t testing.TB) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// corpusMessage reads a corpus message from the copy, or from
// ../shared/corpus for the one too large to keep in the repository.
func corpusMessage(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, file))
	if err == nil {
		return b
	}
	b, err = os.ReadFile(filepath.Join("../../shared/corpus", file))
	if err != nil {
		t.Skipf("%s: not in testdata and no ../shared/corpus", file)
	}
	return b
}

func corpusKeys(t testing.TB) *crypto.Keys {
	t.Helper()
	team, err := os.ReadFile(filepath.Join(corpusDir, "keys/team-secret-protected.asc"))
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(filepath.Join(corpusDir, "keys/known-partners.asc"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.LoadKeys([][]byte{team}, []byte("corpus-team-passphrase"), known)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func corpusOptions(m *manifest) parse.Options {
	own := []string{}
	domains := map[string]bool{"csirt.example.org": true}
	for _, a := range m.Team.Addresses {
		own = append(own, a)
		domains[a[strings.LastIndex(a, "@")+1:]] = true
	}
	o := parse.Options{TeamName: "Example CSIRT", OwnAddresses: own, TicketPrefix: "CSIRT",
		PartnerTags: []parse.PartnerTag{{Name: "Northwind", Pattern: regexp.MustCompile(`NW-CERT#[0-9-]+`)}}}
	for d := range domains {
		o.OwnDomains = append(o.OwnDomains, d)
	}
	return o
}

func indicatorsOf(r *parse.Report, kind string) []string {
	in := r.Indicators
	m := map[string][]string{"ipv4": in.IPv4, "ipv6": in.IPv6, "domains": in.Domains, "urls": in.URLs, "emails": in.Emails,
		"md5": in.MD5, "sha1": in.SHA1, "sha256": in.SHA256, "cves": in.CVEs}
	out := []string{}
	for _, v := range m[kind] {
		out = append(out, strings.TrimRight(strings.ToLower(v), "/"))
	}
	return out
}

func TestCorpusGolden(t *testing.T) {
	m := loadManifest(t)
	keys := corpusKeys(t)
	opt := corpusOptions(m)
	aliases := map[string][]string{"shift_jis": {"shift_jis", "cp932", "windows-31j", "sjis"}}
	for _, msg := range m.Messages {
		t.Run(filepath.Base(msg.File), func(t *testing.T) {
			raw := corpusMessage(t, msg.File)
			r, err := Analyze(raw, keys, crypto.Limits{}, opt, time.Now())
			if err != nil {
				t.Fatalf("analyze: %v", err)
			}
			if string(r.Signature.Status) != msg.Signature.Status {
				t.Errorf("signature %q, want %q", r.Signature.Status, msg.Signature.Status)
			}
			wantDec := msg.Decryption.Status
			if wantDec == "refused-too-large" {
				wantDec = "refused"
			}
			if string(r.Decryption.Status) != wantDec {
				t.Errorf("decryption %q, want %q", r.Decryption.Status, wantDec)
			}
			if msg.ProtectedSubject != "" && !strings.Contains(r.Subject, msg.ProtectedSubject) {
				t.Errorf("subject %q lacks protected %q", r.Subject, msg.ProtectedSubject)
			}
			if wantDec != "none" && wantDec != "ok" {
				return
			}
			if len(msg.RSIT.Acceptable) > 0 {
				got := r.Classification.Taxonomy + "/" + r.Classification.Type
				if !slices.Contains(msg.RSIT.Acceptable, got) {
					t.Errorf("classification %s, want one of %v", got, msg.RSIT.Acceptable)
				}
			}
			if msg.Charset != nil {
				want := strings.ToLower(*msg.Charset)
				ok := r.Charset == want || slices.Contains(aliases[want], r.Charset)
				if !ok {
					t.Errorf("charset %q, want %q", r.Charset, want)
				}
			}
			if msg.Language != nil && r.Language != *msg.Language {
				t.Errorf("language %q, want %q", r.Language, *msg.Language)
			}
			for kind, vals := range msg.Indicators.MustInclude {
				have := indicatorsOf(r, kind)
				for _, v := range vals {
					if !slices.Contains(have, strings.TrimRight(strings.ToLower(v), "/")) {
						t.Errorf("missing %s %s (have %v)", kind, v, have)
					}
				}
			}
			for kind, vals := range msg.Indicators.MustNotInclude {
				have := indicatorsOf(r, kind)
				for _, v := range vals {
					if slices.Contains(have, strings.TrimRight(strings.ToLower(v), "/")) {
						t.Errorf("reported %s %s", kind, v)
					}
				}
			}
			if msg.Acknowledge.Rule != "reply-to-existing" && msg.Acknowledge.Rule != "duplicate" && r.Ack.Send != msg.Acknowledge.Expected {
				t.Errorf("ack.send %v (%s), want %v (%s)", r.Ack.Send, r.Ack.Reason, msg.Acknowledge.Expected, msg.Acknowledge.Rule)
			}
			for _, s := range msg.BodyMustContain {
				if !strings.Contains(r.Text+"\n"+r.Subject, s) {
					t.Errorf("text lacks %q", s)
				}
			}
			if len(msg.Forwarded) > 0 && len(r.Forwarded) == 0 {
				t.Errorf("no forwarded message found")
			}
			got := ""
			if r.TLP != nil {
				got = string(*r.TLP)
			}
			want := ""
			if msg.TLP != nil {
				want = *msg.TLP
			}
			if got != want {
				t.Errorf("tlp %q, want %q", got, want)
			}
			if msg.Incident.Action == "attach" && msg.Acknowledge.Rule == "reply-to-existing" && msg.Incident.Ticket != "" {
				if r.Thread.Ticket == nil || *r.Thread.Ticket != msg.Incident.Ticket {
					t.Errorf("thread.ticket %v, want %s", r.Thread.Ticket, msg.Incident.Ticket)
				}
			}
		})
	}
}

// TestCorpusFiling feeds the corpus in processing order through the whole
// pipeline into a real store and checks what the manifest says of filing:
// new, attached (to which incident) or duplicate, and whether an
// acknowledgement is queued.
func TestCorpusFiling(t *testing.T) {
	m := loadManifest(t)
	keys := corpusKeys(t)
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT",
		Now: func() time.Time { return time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range m.Preexisting {
		if err := s.ImportIncident(ctx, p.Ticket, p.Subject, p.Requester, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	proc := &Processor{Store: s, Keys: keys, ParseOpts: corpusOptions(m), AckDomain: "csirt.example.org", MaxAttempts: 3, Lease: time.Minute,
		Log: quietLogger()}
	ticketOf := map[string]string{}
	for _, msg := range m.Messages {
		raw := corpusMessage(t, msg.File)
		id, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, MailFrom: "sender@example.net", Raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "t", 1, time.Minute, 3); err != nil {
			t.Fatal(err)
		}
		res, err := proc.Process(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", msg.File, err)
		}
		base := filepath.Base(msg.File)
		ticketOf[base] = res.Ticket
		action := map[string]string{store.OutcomeNew: "new", store.OutcomeAttached: "attach", store.OutcomeDuplicate: "duplicate", store.OutcomeNoted: "none"}[res.Outcome]
		if !slices.Contains(msg.Incident.AcceptableActions, action) {
			t.Errorf("%s: %s (%s), want one of %v", base, action, res.Note, msg.Incident.AcceptableActions)
		}
		if action == "attach" {
			want := msg.Incident.Ticket
			if msg.Incident.SameIncidentAs != "" {
				want = ticketOf[filepath.Base(msg.Incident.SameIncidentAs)]
			}
			if want != "" && res.Ticket != want {
				t.Errorf("%s: attached to %s, want %s", base, res.Ticket, want)
			}
		}
		if (res.AckID != 0) != msg.Acknowledge.Expected {
			t.Errorf("%s: ack queued %v, want %v (%s)", base, res.AckID != 0, msg.Acknowledge.Expected, msg.Acknowledge.Rule)
		}
	}
}
