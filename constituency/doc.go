// Package constituency knows whose systems a report is about: it reads
// the constituents file (networks, ASNs, domains, contacts and how each
// wants to be told) and an optional IP-to-ASN table, and matches a
// report's indicators against them.
//
// It is pure: bytes in, a Set out, and a Set answers Match without I/O or
// mutable state, so one Set is shared by every worker and a reload
// (SIGHUP) swaps it whole. Matching costs a hash lookup per distinct
// prefix length for an address, a lookup per label for a host name, and
// a binary search of the ASN table: a table of 100,000 networks costs no
// more than a handful of lookups (BenchmarkMatch).
//
// Rules: an address belongs to the constituent with the longest prefix
// that contains it, else to the constituent of its ASN (through the
// table); a host name to the constituent of the longest configured domain
// it equals or is a subdomain of. The same network or domain configured
// for two constituents is an error.
package constituency
