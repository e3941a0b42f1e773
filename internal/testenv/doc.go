// Package testenv holds what the tests of several packages share: a
// throwaway GnuPG home driven in batch mode, and a fresh PostgreSQL
// database. It is test support; no production code imports it.
package testenv
