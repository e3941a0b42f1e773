package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// ClaimMessages claims queue rows and reads their messages in one
// autocommit statement on the lazy pool: the shared way, a claim
// transaction and a read per message, is a round trip each.
func (s *Store) ClaimMessages(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]store.Claim, []*store.Message, error) {
	now := sqlstore.Micros(s.Now())
	cols := strings.Split(sqlstore.MessageColumns, ", ")
	for i, c := range cols {
		cols[i] = "s." + c
	}
	q := dialect{}.Rebind(`WITH c AS (` + sqlstore.ClaimQueueSQL(" FOR UPDATE SKIP LOCKED") + `)
		SELECT c.attempts, ` + strings.Join(cols, ", ") + ` FROM c JOIN spool s ON s.id = c.spool_id`)
	rows, err := s.L.QueryContext(ctx, q, store.StateClaimed, now+lease.Microseconds(), worker, now, now, now, n, now, n)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: claim: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var cl []store.Claim
	var msgs []*store.Message
	var over []int64
	for rows.Next() {
		var attempts int
		m, err := sqlstore.ScanMessage(rows, &attempts)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: claim: %v", store.ErrUnavailable, err)
		}
		if attempts > maxAttempts {
			over = append(over, m.ID)
			continue
		}
		cl, msgs = append(cl, store.Claim{SpoolID: m.ID, Attempts: attempts}), append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: claim: %v", store.ErrUnavailable, err)
	}
	rows.Close()
	if len(over) > 0 {
		if _, err := s.L.ExecContext(ctx, `UPDATE queue SET state = $1, reason = $2, last_error = $3, updated_at = $4 WHERE spool_id = ANY($5)`,
			store.StateQuarantined, sqlstore.ReasonCrashed, sqlstore.DetailCrashed, now, over); err != nil {
			return nil, nil, fmt.Errorf("%w: claim: %v", store.ErrUnavailable, err)
		}
	}
	// Oldest first, as the batch is filed in this order (a reply after
	// what it replies to): RETURNING keeps no order of its own.
	order := make([]int, len(cl))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(cl[a].SpoolID, cl[b].SpoolID) })
	outC, outM := make([]store.Claim, len(cl)), make([]*store.Message, len(cl))
	for i, j := range order {
		outC[i], outM[i] = cl[j], msgs[j]
		if m := outM[i]; len(m.Raw) == 0 && m.Size > 0 { // chunked: read whole
			if outM[i], err = s.GetMessage(ctx, m.ID); err != nil {
				outM[i] = nil
			}
		}
	}
	return outC, outM, nil
}
