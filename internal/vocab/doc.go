// Package vocab is madoguchi's typed vocabulary, each term defined here
// once: ticket IDs, incident statuses, indicator kinds, the verdicts of
// decryption and signatures, and TLP. The strings are those of the report
// JSON, the store and the API (shared/interface.md).
package vocab
