// Package configs holds madoguchi's configuration: the Config type, its
// built-in defaults, a strict YAML loader and the validation that
// `madoguchi config check` reports.
//
// Invariants:
//   - Load never silently ignores input: an unknown key or a value of the wrong
//     type is an error that names the key and the line (yaml KnownFields).
//   - Defaults() alone is a complete, valid configuration: `madoguchi serve`
//     runs with no file at all (embedded SQLite under ./madoguchi-data/).
//   - Secrets are never inline: they are read from *_file paths, and relative
//     paths are resolved against the directory of the configuration file.
//
// The documented example and a production example on PostgreSQL live beside
// this file (example.yaml, production-postgres.yaml) and are loaded by tests,
// so they can never drift from the code.
package configs
