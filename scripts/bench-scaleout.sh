#!/usr/bin/env bash
# One daemon against two on one PostgreSQL (issue #8, 2c), same machine,
# same load tool and mix (the corpus mix: plain, Japanese, PGP, forwarded,
# ARF), loopback only. Prints messages/s end to end for each and the ratio;
# the filing test TestTwoDaemonsOnePostgres proves nothing is filed twice.
#
#   scripts/bench-scaleout.sh [N]        (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000}"
work=$(mktemp -d /tmp/madoguchi-scale.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/madoguchi" ./cmd/madoguchi
go build -o "$work/madoguchi-bench" ./cmd/madoguchi-bench
db="madoguchi_scale_$$"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() { # name
  local smtp http; smtp=$(free_port); http=$(free_port)
  cat > "$work/$1.yaml" <<YAML
store:
  driver: postgres
  dsn: "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
intake:
  smtp:
    listen: 127.0.0.1:$smtp
    recipients: [csirt@example.org]
    max_connections_per_ip: 64
    max_messages_per_connection: 1000
notify:
  outbox_dir: $work/outbox-$1
http:
  listen: 127.0.0.1:$http
YAML
  "$work/madoguchi" --config "$work/$1.yaml" serve 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "serving smtp=" "$work/$1.log" && break; sleep 0.1; done
  SMTP="127.0.0.1:$smtp" HTTP="127.0.0.1:$http"
}
fresh() { psql -h 127.0.0.1 -U postgres -qc "SET client_min_messages=warning" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db" >/dev/null; }
fresh
start one; s1=$SMTP h1=$HTTP
"$work/madoguchi-bench" --corpus testdata/corpus/messages --smtp "$s1" --http "$h1" -n "$N" -c 8 --json > "$work/one.json"
for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; pids=()
fresh
start a; s1=$SMTP h1=$HTTP
start b; s2=$SMTP h2=$HTTP
"$work/madoguchi-bench" --corpus testdata/corpus/messages --smtp "$s1,$s2" --http "$h1,$h2" -n "$N" -c 8 --json > "$work/two.json"
for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; pids=()
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
python3 - "$work/one.json" "$work/two.json" <<'PY'
import json, sys
one, two = (json.load(open(p)) for p in sys.argv[1:3])
for name, r in (("one daemon ", one), ("two daemons", two)):
    print(f"{name}: accepted {r['send_msgs_per_s']:6.0f} msg/s, filed end to end {r['end_to_end_msgs_per_s']:6.0f} msg/s, 250→filed p99 {r['received_to_filed_p99_ms']:7.1f} ms, RSS {r['daemon_peak_rss_mib']:.0f} MiB")
print(f"ratio two/one (end to end): {two['end_to_end_msgs_per_s']/one['end_to_end_msgs_per_s']:.2f}×")
PY
