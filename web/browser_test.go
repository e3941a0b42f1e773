package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/notify"
	"github.com/madoguchi/madoguchi/store"
)

// TestBrowserWorkflow: headless Chromium drives the whole path an analyst
// takes, on pages without JavaScript: sign in, the list, an incident, a
// note, a reply, resolving it with a resolution; screenshots go to
// $MADOGUCHI_ARTIFACTS. The reply and the resolution notice then go
// through the outbox to a real Postfix, signed with the team key, and gpg
// verifies both (exit status 0).
func TestBrowserWorkflow(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not installed (CI installs it)")
		}
		t.Skip("chromium not installed")
	}
	pf := testenv.StartPostfix(t)
	g := testenv.NewGPG(t)
	teamPub, _ := os.ReadFile("../testdata/corpus/keys/team-public.asc")
	g.Must(teamPub, "--import")
	e := setup(t)

	dir := os.Getenv("MADOGUCHI_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	_ = os.MkdirAll(dir, 0o755)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1200, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser, and lives as long as it.
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(browser, 90*time.Second)
	defer cancelTime()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, st := range steps {
			sctx, c := context.WithTimeout(ctx, 20*time.Second)
			err := chromedp.Do(sctx, st)
			c()
			if err != nil {
				html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
				t.Fatalf("chromium, %s (step %d): %v\n%.3000s", what, i+1, err, html)
			}
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil || len(png) < 2000 {
			t.Fatalf("screenshot %s: %v (%d bytes)", name, err, len(png))
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step("sign in",
		chromedp.Navigate(e.srv.URL+"/staff/"), // sent to the sign-in form
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("incidents")))
	shot("staff-list.png")
	step("open an incident",
		chromedp.Click(chromedp.CSS(`a[href="/staff/incidents/CSIRT-2026-000001"]`)),
		chromedp.WaitVisible(chromedp.ID("summary")))
	step("add a note",
		chromedp.SendKeys(chromedp.ID("note-text"), "Called the hoster about it."),
		chromedp.Click(chromedp.ID("add-note")),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//pre[contains(., "Called the hoster about it.")]`)))
	step("reply",
		chromedp.SendKeys(chromedp.ID("reply-text"), "Thank you: we have asked the hoster to take the site down."),
		chromedp.Click(chromedp.ID("send-reply")),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="outbox"]//td[text()="reply"]`)))
	shot("staff-incident.png")
	step("resolve",
		chromedp.SetValue(chromedp.ID("status-select"), "resolved"),
		chromedp.SendKeys(chromedp.ID("resolution"), "The phishing site was taken down by its hoster."),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.Search(`//td[@id="status"][text()="resolved"]`)))
	shot("staff-resolved.png")
	events, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("events")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(events, "alice") || !strings.Contains(events, "resolution notice") {
		t.Fatalf("events as the browser shows them:\n%s", events)
	}

	// The outbox: the acknowledgement, the reply and the resolution notice.
	team, _ := os.ReadFile("../testdata/corpus/keys/team-secret-unprotected.asc")
	keys, err := crypto.LoadKeys([][]byte{team}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &notify.Writer{Store: e.s, Keys: keys, Deliver: &notify.Relay{Addr: pf.Addr, Hostname: "csirt.example.org"},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Team: notify.Team{Name: "Example CSIRT", Address: "csirt@example.org"}}
	for range 3 {
		if _, err := w.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := e.s.GetIncident(context.Background(), "CSIRT#2026-000001")
	for _, o := range d.Outbox {
		if o.State != store.OutboxSent {
			t.Fatalf("outbox row %d (%s) is %s: %s", o.ID, o.Kind, o.State, o.LastError)
		}
	}
	var reply, notice string
	var subjects []string
	counts, _ := e.s.OutboxCounts(context.Background())
	for _, m := range pf.Delivered(counts[store.OutboxSent]) { // every incident's acknowledgement, the reply, the notice
		msg, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		subjects = append(subjects, subj)
		entity, _ := g.OpenPGPMIME(m)
		part, err := mail.ReadMessage(bytes.NewReader(entity))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(quotedprintable.NewReader(part.Body))
		switch {
		case strings.HasPrefix(subj, "[CSIRT#2026-000001] Resolved: "):
			notice = string(text)
			if msg.Header.Get("Auto-Submitted") != "auto-generated" || msg.Header.Get("In-Reply-To") != "<p1@reporter.example>" {
				t.Fatalf("resolution notice header: %v", msg.Header)
			}
		case strings.HasPrefix(subj, "[CSIRT#2026-000001] Re: ") && msg.Header.Get("Auto-Submitted") == "":
			reply = string(text)
		}
	}
	if !strings.Contains(reply, "we have asked the hoster to take the site down.") || !strings.Contains(reply, "CSIRT#2026-000001") {
		t.Fatalf("reply as delivered:\n%s", reply)
	}
	if !strings.Contains(notice, "has been resolved") || !strings.Contains(notice, "The phishing site was taken down by its hoster.") {
		t.Fatalf("resolution notice as delivered (subjects %q):\n%s", subjects, notice)
	}
}
