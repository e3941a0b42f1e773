// Command madoguchi-bench is madoguchi's load tool: it sends N messages of a
// mix (plain English, Japanese ISO-2022-JP, PGP encrypted and signed,
// forwarded, ARF; by default taken from the test corpus) over SMTP with C
// connections, waits until the daemon has filed every one (read from its
// /metrics), and reports messages/s end to end, the SMTP transaction's
// p50/p99 (MAIL to the final 250), the 250-to-filed p50/p99 and per-stage
// means from the daemon's histograms, and the daemon's peak RSS.
//
//	madoguchi-bench --smtp 127.0.0.1:2525 --http 127.0.0.1:8025 -n 2000 -c 8
//
// With --warmup W it first sends W messages the same way and waits until
// they are filed: what it reports is then the daemon running, not the
// daemon starting (opening its store connections, preparing statements).
//
// With --http empty it only sends (to compare with an MTA such as Postfix,
// which has no /metrics) and reports the SMTP side.
package main
