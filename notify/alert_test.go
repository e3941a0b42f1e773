package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

// TestAlertsAndFollowUp: a new incident of an alerting class queues a duty
// mail and a webhook in its filing transaction; the webhook carries a valid
// HMAC and is retried on 5xx; a follow-up to the open ticket gets the short
// note; an unsigned-for secret fails verification.
func TestAlertsAndFollowUp(t *testing.T) {
	secret := []byte("hook-secret")
	var mu sync.Mutex
	var got []WebhookPayload
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // retried
			return
		}
		if r.Header.Get(SignatureHeader) != Sign(secret, body) || Sign([]byte("other"), body) == Sign(secret, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, p)
	}))
	defer hook.Close()

	f := newFixture(t, nil)
	ctx := context.Background()
	spool := func(raw string) int64 {
		id, err := f.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	js := `{"message_id":"<leak@r.example>","subject":"Customer database posted online","from":"r@r.example","language":"en",
		"decryption":{"status":"none"},"thread":{"references":[]},"tlp":"amber",
		"classification":{"taxonomy":"information-content-security","type":"data-leak","confidence":0.8}}`
	res, err := f.s.File(ctx, &store.Filing{SpoolID: spool("a"), MessageID: "<leak@r.example>", Sender: "r@r.example", ReportJSON: []byte(js),
		Ack:   &store.AckRequest{Recipient: "r@r.example", Domain: "csirt.example.org", FollowUp: true},
		Alert: &store.AlertRequest{DutyAddress: "duty@example.org", WebhookURL: hook.URL, Domain: "csirt.example.org"}})
	if err != nil || res.Outcome != store.OutcomeNew {
		t.Fatal(res, err)
	}
	js2 := `{"message_id":"<more@r.example>","subject":"Re: more","language":"en","decryption":{"status":"none"},"thread":{"references":["<leak@r.example>"]},"tlp":null}`
	res2, err := f.s.File(ctx, &store.Filing{SpoolID: spool("b"), MessageID: "<more@r.example>", Sender: "r@r.example", ReportJSON: []byte(js2),
		References: []string{"<leak@r.example>"}, Ack: &store.AckRequest{Recipient: "r@r.example", Domain: "csirt.example.org", FollowUp: true},
		Alert: &store.AlertRequest{DutyAddress: "duty@example.org", Domain: "csirt.example.org"}})
	if err != nil || res2.Outcome != store.OutcomeAttached {
		t.Fatal(res2, err)
	}
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	w.Keys = nil
	w.WebhookSecret = secret
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 3 || st[store.OutboxPending] != 1 {
		t.Fatalf("after the first pass (webhook answered 503): %v", st)
	}
	f.clock.Add(time.Hour)
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.states(t); st[store.OutboxSent] != 4 {
		t.Fatalf("after the retry: %v", st)
	}
	if len(got) != 1 || got[0].Ticket != "CSIRT#2026-000001" && !strings.HasPrefix(got[0].Ticket, "CSIRT#") || got[0].Type != "data-leak" || got[0].Subject == "" {
		t.Fatalf("webhook payloads: %+v", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	kinds := map[string]string{}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		switch {
		case strings.Contains(p, ".alert."):
			kinds["alert"] = string(b)
		case strings.Contains(p, ".followup."):
			kinds["followup"] = string(b)
		case strings.Contains(p, ".ack."):
			kinds["ack"] = string(b)
		}
	}
	if !strings.Contains(kinds["alert"], "To: <duty@example.org>") || !strings.Contains(kinds["alert"], "information-content-security/data-leak") {
		t.Fatalf("alert:\n%s", kinds["alert"])
	}
	if !strings.Contains(kinds["followup"], "added to") || kinds["ack"] == "" {
		t.Fatalf("followup/ack: %q", kinds)
	}
}

// TestAckLoopStops: two madoguchi instances acknowledging each other stop
// at once: our acknowledgement, read by another gateway's parser, is an
// auto-reply that must not be acknowledged.
func TestAckLoopStops(t *testing.T) {
	f := newFixture(t, nil)
	f.file(t, "other-csirt@peer.example", "Scan from 192.0.2.1", "en", "none")
	rows, _ := f.s.ClaimOutbox(context.Background(), 1, time.Minute)
	for _, signed := range []bool{false, true} {
		w := f.writer(FileDelivery{Dir: t.TempDir()})
		if !signed {
			w.Keys = nil
		}
		msg, _, err := w.Render(context.Background(), rows[0])
		if err != nil {
			t.Fatal(err)
		}
		rep, _ := parse.Parse(msg, parse.Options{OwnAddresses: []string{"other-csirt@peer.example"}, HasEnvelope: true, MailFrom: ""})
		if rep.Ack.Send {
			t.Fatalf("signed=%v: the peer would acknowledge our acknowledgement", signed)
		}
	}
}
