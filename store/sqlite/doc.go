// Package sqlite is the madoguchi store in an SQLite file (modernc.org/sqlite,
// pure Go): the embedded default, for one daemon on one machine. Its
// migrations are migrations/*.sql; its part of filing is file.go.
package sqlite
