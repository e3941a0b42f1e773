package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/madoguchi/madoguchi/internal/app"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := 0
	if err != nil {
		code = 1
		var ee *app.ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func writeConfig(t *testing.T, driver, dsn string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "madoguchi.yaml")
	cfg := fmt.Sprintf("store:\n  driver: %s\n  dsn: %q\nnotify:\n  outbox_dir: %s\n", driver, dsn, filepath.Join(dir, "outbox"))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func postgresDSN(t *testing.T) string { return testenv.PostgresDSN(t) }

// The "done when": import one .eml, one incident with a ticket;
// import again, nothing new; on both drivers.
func TestImportTwiceOneIncident(t *testing.T) {
	for _, drv := range []string{"sqlite", "postgres"} {
		t.Run(drv, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "m.db")
			if drv == "postgres" {
				dsn = postgresDSN(t)
			}
			cfg := writeConfig(t, drv, dsn)
			eml := "../../testdata/corpus/messages/01-phishing-report-plain-en.eml"
			out, errOut, code := runCLI(t, "--config", cfg, "import", "--no-ack", eml)
			if code != 0 || !strings.Contains(out, "1 new incidents") {
				t.Fatalf("import: %d %q %q", code, out, errOut)
			}
			out, _, code = runCLI(t, "--config", cfg, "import", "--no-ack", eml)
			if code != 0 || !strings.Contains(out, "0 new incidents") || !strings.Contains(out, "1 duplicates") {
				t.Fatalf("second import: %d %q", code, out)
			}
			out, _, code = runCLI(t, "--config", cfg, "incidents", "list", "--json")
			var list []struct {
				Ticket  string `json:"ticket"`
				Reports int    `json:"reports"`
			}
			if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
				t.Fatalf("list: %d %q", code, out)
			}
			if !regexp.MustCompile(`^CSIRT#\d{4}-000001$`).MatchString(list[0].Ticket) || list[0].Reports != 1 {
				t.Fatalf("incident %+v", list[0])
			}
			out, _, code = runCLI(t, "--config", cfg, "incidents", "show", list[0].Ticket, "--json")
			if code != 0 || !strings.Contains(out, "login-verify.example.com") || !strings.Contains(out, `"duplicate"`) {
				t.Fatalf("show: %d %s", code, out)
			}
			// reprocess everything: same incident, report updated.
			out, _, code = runCLI(t, "--config", cfg, "reprocess", "--since", "2000-01-01")
			if code != 0 || !strings.Contains(out, "0 new incidents") {
				t.Fatalf("reprocess: %d %q", code, out)
			}
		})
	}
}

// TestImportAndReprocessFileOnlyTheirOwn: on a store a daemon shares,
// import files exactly the messages it read and reprocess exactly those
// asked for; mail the daemon spooled (by SMTP) stays in the queue for the
// daemon, which acknowledges it, however --no-ack an import is.
func TestImportAndReprocessFileOnlyTheirOwn(t *testing.T) {
	for _, drv := range []string{"sqlite", "postgres"} {
		t.Run(drv, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "m.db")
			if drv == "postgres" {
				dsn = postgresDSN(t)
			}
			cfg := writeConfig(t, drv, dsn)
			ctx := context.Background()
			driver := stores.SQLite
			if drv == "postgres" {
				driver = stores.Postgres
			}
			s, err := stores.Open(ctx, driver, dsn, store.Options{TicketPrefix: "CSIRT"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			smtpID, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, MailFrom: "r@reporter.example",
				Raw: []byte("From: r@reporter.example\r\nSubject: scan\r\nMessage-ID: <smtp1@reporter.example>\r\n\r\n192.0.2.7 scans us\r\n")})
			if err != nil {
				t.Fatal(err)
			}
			ready := func(what string) {
				t.Helper()
				cl, err := s.ListQueue(ctx, store.StateReady, 10)
				if err != nil || len(cl) != 1 || cl[0].SpoolID != smtpID {
					t.Fatalf("after %s, the daemon's message is not ready in the queue: %+v %v", what, cl, err)
				}
			}
			out, errOut, code := runCLI(t, "--config", cfg, "import", "--no-ack", "../../testdata/corpus/messages/01-phishing-report-plain-en.eml")
			if code != 0 || !strings.Contains(out, "imported 1 messages: 1 new incidents") {
				t.Fatalf("import: %d %q %q", code, out, errOut)
			}
			ready("import")
			out, _, code = runCLI(t, "--config", cfg, "reprocess", "--since", "2000-01-01")
			if code != 0 || !strings.Contains(out, "reprocessed 2 messages: 1 updated") {
				t.Fatalf("reprocess: %d %q", code, out)
			}
			// reprocess --since asked for the SMTP message too: it is
			// filed (acknowledged as the daemon would), nothing else.
			if n, _ := s.QueueCounts(ctx); n[store.StateReady] != 0 || n[store.StateDone] != 2 {
				t.Fatalf("queue after reprocess: %v", n)
			}
		})
	}
}

func TestBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("team:\n  name: X\n  colour: blue\n"), 0o600)
	_, errOut, code := runCLI(t, "--config", bad, "config", "check")
	if code != 2 || !strings.Contains(errOut, "bad.yaml:3: team.colour: unknown key") {
		t.Fatalf("unknown key: %d %q", code, errOut)
	}
	os.WriteFile(bad, []byte("intake:\n  smtp:\n    max_message_bytes: lots\n"), 0o600)
	_, errOut, code = runCLI(t, "--config", bad, "config", "check")
	if code != 2 || !strings.Contains(errOut, "bad.yaml:3: intake.smtp.max_message_bytes: wrong type") {
		t.Fatalf("wrong type: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "--config", filepath.Join(dir, "nope.yaml"), "config", "check")
	if code != 2 || !strings.Contains(errOut, "nope.yaml: cannot read") {
		t.Fatalf("missing config: %d %q", code, errOut)
	}
	good := writeConfig(t, "sqlite", filepath.Join(dir, "m.db"))
	_, errOut, code = runCLI(t, "--config", good, "import", filepath.Join(dir, "missing.eml"))
	if code != 2 || !strings.Contains(errOut, "missing.eml: cannot read") {
		t.Fatalf("unreadable path: %d %q", code, errOut)
	}
	unreach := writeConfig(t, "postgres", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2")
	_, errOut, code = runCLI(t, "--config", unreach, "incidents", "list")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "unavailable") {
		t.Fatalf("unreachable db: %d %q", code, errOut)
	}
}

func TestImportCorruptMbox(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "sqlite", filepath.Join(dir, "m.db"))
	mbox := "From a@x Mon Jan  1 00:00:00 2026\nFrom: a@example.net\nSubject: one\nMessage-ID: <1@x>\n\nphishing at http://evil.example/\n" +
		"From garbage line only\n" +
		"From b@x Mon Jan  1 00:00:00 2026\nnot a header at all\n\nbody\n" +
		"From c@x Mon Jan  1 00:00:00 2026\nFrom: c@example.net\nSubject: three\nMessage-ID: <3@x>\n\n>From the start\ntrunc"
	p := filepath.Join(dir, "box.mbox")
	os.WriteFile(p, []byte(mbox), 0o600)
	out, errOut, code := runCLI(t, "--config", cfg, "import", "--no-ack", p)
	if code != 1 || !strings.Contains(out, "imported 2 messages: 2 new incidents") {
		t.Fatalf("mbox: %d %q %q", code, out, errOut)
	}
	for _, want := range []string{"box.mbox@", "truncated entry", "not a message"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("bad entries not reported with offsets: %q", errOut)
		}
	}
}

func TestParseCommandPrintsReport(t *testing.T) {
	cfg := writeConfig(t, "sqlite", filepath.Join(t.TempDir(), "m.db"))
	out, errOut, code := runCLI(t, "--config", cfg, "parse", "../../testdata/corpus/messages/02-ja-iso2022jp-defacement.eml")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r["charset"] != "iso-2022-jp" || r["language"] != "ja" || !strings.Contains(r["subject"].(string), "改ざん") {
		t.Fatalf("%v %v %v", r["charset"], r["language"], r["subject"])
	}
}

// TestParseWithoutTeamKeyFile: a team key file that cannot be read makes
// `parse` warn and go on (plain mail still parses), while commands that run
// the gateway refuse to start without it.
func TestParseWithoutTeamKeyFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	missing := filepath.Join(dir, "no-such-key.asc")
	body := fmt.Sprintf("store:\n  dsn: %s\ncrypto:\n  team_key_files: [%s]\n", filepath.Join(dir, "m.db"), missing)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "--config", cfg, "parse", "../../testdata/corpus/messages/01-phishing-report-plain-en.eml")
	if code != 0 || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, missing) {
		t.Fatalf("parse: code %d, stderr %q", code, errOut)
	}
	if !json.Valid([]byte(out)) {
		t.Fatalf("parse printed no JSON: %q", out)
	}
	_, errOut, code = runCLI(t, "--config", cfg, "import", "--no-ack", "../../testdata/corpus/messages/01-phishing-report-plain-en.eml")
	if code != 2 || !strings.Contains(errOut, missing) {
		t.Fatalf("import: code %d, stderr %q", code, errOut)
	}
}

// TestConfigCheckReportsEveryProblem: one run of config check shows every
// problem, each with file, line and key, and still exits 2.
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(p, []byte("team:\n  name: X\n  colour: blue\n  address: nope\nnotify:\n  max_attempts: -1\n  rate_per_hour: lots\n"), 0o600)
	_, errOut, code := runCLI(t, "--config", p, "config", "check")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{p + ":3: team.colour: unknown key", p + ":7: notify.rate_per_hour: wrong type", p + ":4: team.address", p + ":6: notify.max_attempts"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

// TestParseAuthenticates: parse's dry run of the SMTP listener's checks,
// against a DNS server of the test's: DKIM by the signature, SPF by the
// flags; with auth.dns_resolver and no flags, DKIM alone.
func TestParseAuthenticates(t *testing.T) {
	d := testenv.StartDNS(t)
	k := testenv.NewDKIM(t, d)
	k.Key("s1", "partner.example", "ed25519")
	d.TXT("partner.example", "v=spf1 ip4:192.0.2.25 -all")
	d.TXT("_dmarc.partner.example", "v=DMARC1; p=reject")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  dsn: "+filepath.Join(dir, "m.db")+"\nauth:\n  dns_resolver: "+d.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "m.eml")
	signed := k.Sign("From: cert@partner.example\r\nTo: csirt@example.org\r\nSubject: Notice\r\nMessage-ID: <n1@partner.example>\r\n\r\nScan from 198.51.100.9.\r\n", "s1", "partner.example", "ed25519-sha256")
	if err := os.WriteFile(msg, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	auth := func(args ...string) map[string]any {
		t.Helper()
		out, errOut, code := runCLI(t, append([]string{"--config", cfg, "parse"}, args...)...)
		if code != 0 {
			t.Fatalf("parse: %d %s", code, errOut)
		}
		var rep struct {
			Auth map[string]any `json:"authentication"`
		}
		_ = json.Unmarshal([]byte(out), &rep)
		return rep.Auth
	}
	if a := auth(msg, "--client-ip", "203.0.113.1", "--mail-from", "cert@partner.example"); a["dkim"] != "pass" || a["spf"] != "fail" || a["dmarc"] != "pass" {
		t.Fatalf("with the flags: %v", a)
	}
	if a := auth(msg); a["dkim"] != "pass" || a["spf"] != "none" || a["dmarc"] != "pass" || a["source"] != "none" {
		t.Fatalf("without: %v", a)
	}
}
