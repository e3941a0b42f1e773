package notify

import (
	"context"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/madoguchi/madoguchi/store"
)

// TestBackscatterBudgets: forged senders cannot turn the gateway into a
// spam cannon: sub-addresses count as their address, and a domain and
// the gateway as a whole have hourly budgets; a stranger's subject is
// echoed bounded and without its links.
func TestBackscatterBudgets(t *testing.T) {
	f := newFixture(t, nil)
	spam := "Cheap meds at http://spam.example/buy and www.spam.example — write to sales@spam.example now!!! \u202eevil"
	var rcpts []string
	for i := range 5 {
		rcpts = append(rcpts, fmt.Sprintf("victim+%d@victim.example", i)) // 3 sent: the address's budget
	}
	rcpts = append(rcpts, "a@victim.example", "b@victim.example", "c@victim.example") // 2 sent: the domain's
	for i := range 5 {
		rcpts = append(rcpts, fmt.Sprintf("x@other%d.example", i)) // 3 sent: the global one
	}
	for _, r := range rcpts {
		f.file(t, r, spam, "en", "none")
	}
	dir := t.TempDir()
	w := f.writer(FileDelivery{Dir: dir})
	w.RatePerHour, w.DomainPerHour, w.GlobalPerHour = 3, 5, 8
	for range 3 {
		if _, err := w.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := f.states(t)
	if st[store.OutboxSent] != 8 || st[store.OutboxSkipped] != 5 {
		t.Fatalf("outbox %v, want 8 sent and 5 skipped", st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	perDomain := map[string]int{}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		m, err := mail.ReadMessage(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		to, _ := mail.ParseAddress(m.Header.Get("To"))
		perDomain[to.Address[strings.Index(to.Address, "@")+1:]]++
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if strings.Contains(subj, "spam.example") || strings.Contains(subj, "\u202e") || utf8.RuneCountInString(subj) > 100 {
			t.Errorf("a stranger's subject echoed: %q", subj)
		}
		if !strings.Contains(subj, "Cheap meds") {
			t.Errorf("subject %q: the harmless part should stay", subj)
		}
	}
	if perDomain["victim.example"] != 5 {
		t.Errorf("per domain: %v", perDomain)
	}
}
