// Package postgres is the madoguchi store in PostgreSQL (pgx through
// database/sql), which several daemons may share: claims skip each other's
// locked rows, a mailbox is polled under an advisory lock, ticket numbers
// are taken under the year's counter row lock. Its migrations are
// migrations/*.sql; its part of filing (three statements a batch) is file.go.
package postgres
