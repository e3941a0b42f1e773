package notify

import (
	"bytes"
	"context"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// TestAckSaysOnlyWhatIsConfiguredAndDone: without team.hours the
// acknowledgement leaves the line out (no "Our hours:  (UTC)."), and it
// promises what the software does: a notice when staff resolve it.
func TestAckSaysOnlyWhatIsConfiguredAndDone(t *testing.T) {
	f := newFixture(t, nil)
	f.file(t, "r@reporter.example", "Scan", "en", "none")
	f.file(t, "s@reporter.example", "スキャン", "ja", "none")
	rows, _ := f.s.ClaimOutbox(context.Background(), 10, time.Minute)
	w := f.writer(FileDelivery{Dir: t.TempDir()})
	w.Keys = nil
	w.Team.Hours = ""
	for _, r := range rows {
		msg, _, err := w.Render(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		text := decodedBody(t, msg)
		for _, bad := range []string{"Our hours", "対応時間", "()", "（"} {
			if strings.Contains(text, bad) {
				t.Errorf("acknowledgement says %q:\n%s", bad, text)
			}
		}
		if !strings.Contains(text, "When the incident is resolved, we will let you know.") && !strings.Contains(text, "対応が完了しましたら") {
			t.Errorf("acknowledgement does not say a resolution notice follows:\n%s", text)
		}
	}
	w.Team.Hours = "Mon-Fri 09:00-18:00"
	msg, _, _ := w.Render(context.Background(), rows[0])
	if text := decodedBody(t, msg); !strings.Contains(text, "Our hours: Mon-Fri 09:00-18:00 (Asia/Tokyo).") {
		t.Errorf("hours when configured:\n%s", text)
	}
}

// decodedBody is the text of an unsigned acknowledgement.
func decodedBody(t *testing.T, msg []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
