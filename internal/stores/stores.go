package stores

import (
	"context"
	"fmt"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/postgres"
	"github.com/madoguchi/madoguchi/store/sqlite"
)

// Driver names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Open opens the store of driver at dsn (a file path for SQLite, a
// connection string for PostgreSQL) and applies pending migrations.
func Open(ctx context.Context, driver, dsn string, opt store.Options) (store.Store, error) {
	switch driver {
	case SQLite:
		return sqlite.Open(ctx, dsn, opt)
	case Postgres:
		return postgres.Open(ctx, dsn, opt)
	}
	return nil, fmt.Errorf("store: unknown driver %q", driver)
}
