package sqlite

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// TestClaimsReadOnlyTheWorkInHand: on SQLite the claim statements find
// their rows on the partial indexes of ready and leased rows, never by
// reading the queue or the outbox through (a claim's cost must not grow
// with the backlog or with the rows done; BenchmarkClaim measures it).
func TestClaimsReadOnlyTheWorkInHand(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		sql     string
		indexes []string
	}{
		{sqlstore.ClaimQueueSQL(""), []string{"queue_ready", "queue_leased"}},
		{sqlstore.ClaimOutboxSQL(""), []string{"outbox_pending", "outbox_leased"}},
	} {
		args := make([]any, strings.Count(c.sql, "?"))
		for i := range args {
			args[i] = 1
		}
		rows, err := s.SQL().Query("EXPLAIN QUERY PLAN "+c.sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		for _, ix := range c.indexes {
			if !regexp.MustCompile(`INDEX ` + ix + `\b`).MatchString(all) {
				t.Errorf("plan does not use %s:\n%s", ix, all)
			}
		}
		for _, line := range plan {
			if (strings.HasPrefix(line, "SCAN queue") || strings.HasPrefix(line, "SCAN outbox")) && !strings.Contains(line, "USING INDEX") {
				t.Errorf("plan reads a whole table (%s):\n%s", line, all)
			}
		}
	}
}
