// Package web is the staff side of the HTTP listener: a JSON API over the
// incidents (list and search, one incident with its reports and events, the
// raw message of a report, status and assignee changes) and plain
// server-rendered pages. Everything here needs a bearer token; tokens are
// stored as hashes in a file (see Tokens).
package web
