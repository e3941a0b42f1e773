#!/usr/bin/env bash
# Side by side, in one run, on loopback: madoguchi's SMTP intake (SQLite and
# PostgreSQL), Postfix 3.7 delivering to a Maildir and, when MADDY names a
# maddy v0.8.1 binary (scripts/build-maddy.sh), maddy delivering to its
# SQLite mailbox store; each from an empty store, with the same load tool,
# 1 and 8 connections. Prints one line per
# run and the ratios; docs/benchmarks.md quotes a run of it.
#
#   scripts/bench-intake.sh [N]        (N messages per run, default 2000)
#
# Needs: go, postfix (Debian), PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust), root (Postfix's private instance). Bounded: N messages per run,
# 12 runs, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000}"
SIZE=20480
work=$(mktemp -d /tmp/madoguchi-bench.XXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null || true
  postfix -c "$work/pf/etc" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/madoguchi" ./cmd/madoguchi
go build -o "$work/madoguchi-bench" ./cmd/madoguchi-bench
fsync=$(go test -run '^$' -bench Fsync -benchtime 2000x ./store | awk '/BenchmarkFsync/ {printf "%.0f µs", $3/1000}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); fsync (4 KiB write + fsync): $fsync"
echo "messages: $N per run, $SIZE bytes each"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# --- madoguchi -----------------------------------------------------------
run_madoguchi() { # driver dsn conns [intake-only]
  local driver=$1 dsn=$2 conns=$3 only=${4:-} smtp http label=$1 enabled=true
  if [ -n "$only" ]; then label="$driver-in"; enabled=false; fi
  smtp=$(free_port); http=$(free_port)
  rm -rf "$work/data"; mkdir -p "$work/data"
  cat > "$work/m.yaml" <<EOF
store:
  driver: $driver
  dsn: "$dsn"
intake:
  smtp:
    listen: 127.0.0.1:$smtp
    recipients: [csirt@example.org]
    max_connections_per_ip: 64
    max_messages_per_connection: 1000
notify:
  outbox_dir: $work/data/outbox
http:
  listen: 127.0.0.1:$http
pipeline:
  enabled: $enabled
EOF
  "$work/madoguchi" --config "$work/m.yaml" serve 2>"$work/daemon.log" &
  dpid=$!
  for _ in $(seq 1 100); do grep -q "serving smtp=" "$work/daemon.log" && break; sleep 0.1; done
  if [ -n "$only" ]; then
    # Intake alone (pipeline.enabled: false): nothing is filed to wait for.
    "$work/madoguchi-bench" --smtp 127.0.0.1:$smtp --http "" -n "$N" -c "$conns" --size $SIZE --per-conn 1000 --json > "$work/r.json"
  else
    "$work/madoguchi-bench" --smtp 127.0.0.1:$smtp --http 127.0.0.1:$http -n "$N" -c "$conns" --size $SIZE --per-conn 1000 --json > "$work/r.json"
  fi
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=""
  python3 - "$work/r.json" "$label" "$conns" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
line = f"madoguchi/{sys.argv[2]:<11} c={sys.argv[3]}  {r['send_msgs_per_s']:7.0f} msg/s  MAIL→250 p50 {r['smtp_p50_ms']:6.2f} ms p99 {r['smtp_p99_ms']:6.2f} ms"
if sys.argv[2].endswith("-in"):
    line += "  | intake only (pipeline.enabled: false)"
else:
    line += f"  | filed end-to-end {r['end_to_end_msgs_per_s']:6.0f} msg/s, 250→filed p99 {r['received_to_filed_p99_ms']:6.1f} ms, peak RSS {r['daemon_peak_rss_mib']:.0f} MiB"
print(line)
open(f"/tmp/madoguchi-bench-{sys.argv[2]}-{sys.argv[3]}.rate", "w").write(str(r['send_msgs_per_s']))
PY
}

# --- Postfix ---------------------------------------------------------------
start_postfix() {
  local d=$work/pf port=$1
  mkdir -p "$d/etc" "$d/spool" "$d/data" "$d/mail"
  chown postfix "$d/data"; chown 65534:65534 "$d/mail"
  sed "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$port inet n - n - - smtpd/" /usr/share/postfix/master.cf.dist > "$d/etc/master.cf"
  cat > "$d/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = /tmp
maillog_file = $d/maillog
smtpd_relay_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = regexp:$d/etc/domains
virtual_mailbox_maps = regexp:$d/etc/vmailbox
virtual_mailbox_base = $d/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
default_process_limit = 100
message_size_limit = 26214400
EOF
  echo '/./ OK' > "$d/etc/domains"; echo '/./ all/' > "$d/etc/vmailbox"
  postfix -c "$d/etc" start >/dev/null 2>&1
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
}
run_postfix() { # conns
  local port; port=$(free_port)
  rm -rf "$work/pf"; start_postfix "$port"
  "$work/madoguchi-bench" --smtp 127.0.0.1:$port --http "" -n "$N" -c "$1" --size $SIZE --per-conn 1000 --json > "$work/r.json"
  # Postfix accepts into its queue and delivers after; wait for the Maildir.
  for _ in $(seq 1 600); do [ "$(ls "$work/pf/mail/all/new" 2>/dev/null | wc -l)" -ge "$N" ] && break; sleep 0.1; done
  postfix -c "$work/pf/etc" stop >/dev/null 2>&1
  python3 - "$work/r.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"postfix            c={sys.argv[2]}  {r['send_msgs_per_s']:7.0f} msg/s  MAIL→250 p50 {r['smtp_p50_ms']:6.2f} ms p99 {r['smtp_p99_ms']:6.2f} ms")
open(f"/tmp/madoguchi-bench-postfix-{sys.argv[2]}.rate", "w").write(str(r['send_msgs_per_s']))
PY
}

# --- maddy ----------------------------------------------------------------
run_maddy() { # conns
  local m=$work/maddy port
  port=$(free_port)
  rm -rf "$m"; mkdir -p "$m/state" "$m/run"
  {
    echo "hostname mx.test"
    echo "tls off"
    echo "state_dir $m/state"
    echo "runtime_dir $m/run"
    echo "log $m/maddy.log"
    echo "storage.imapsql local_mailboxes {"
    echo "    driver sqlite3"
    echo "    dsn $m/imapsql.db"
    echo "}"
    echo "smtp tcp://127.0.0.1:$port {"
    echo "    limits {"
    echo "        all rate 100000 1s"
    echo "        all concurrency 1000"
    echo "    }"
    echo "    deliver_to &local_mailboxes"
    echo "}"
  } > "$m/maddy.conf"
  (cd "$m" && "$MADDY" -config "$m/maddy.conf" imap-acct create csirt@example.org >/dev/null 2>&1)
  "$MADDY" -config "$m/maddy.conf" run >"$m/out.log" 2>&1 &
  local mpid=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  "$work/madoguchi-bench" --smtp 127.0.0.1:$port --http "" -n "$N" -c "$1" --size $SIZE --per-conn 1000 --json > "$work/r.json"
  kill "$mpid"; wait "$mpid" 2>/dev/null || true
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
rate, p50, p99 = r["send_msgs_per_s"], r["smtp_p50_ms"], r["smtp_p99_ms"]
print(f"maddy v0.8.1       c={sys.argv[2]}  {rate:7.0f} msg/s  MAIL→250 p50 {p50:6.2f} ms p99 {p99:6.2f} ms")
open(f"/tmp/madoguchi-bench-maddy-{sys.argv[2]}.rate", "w").write(str(rate))
' "$work/r.json" "$1"
}

db="madoguchi_bench_$$"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
trap 'cleanup; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
for c in 1 8; do
  run_postfix "$c"
  if [ -n "${MADDY:-}" ]; then run_maddy "$c"; fi
  run_madoguchi sqlite "$work/data/m.db" "$c"
  psql -h 127.0.0.1 -U postgres -d "$db" -qc "SET client_min_messages=warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null
  run_madoguchi postgres "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" "$c"
  run_madoguchi sqlite "$work/data/m.db" "$c" intake-only
  psql -h 127.0.0.1 -U postgres -d "$db" -qc "SET client_min_messages=warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null
  run_madoguchi postgres "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" "$c" intake-only
done
python3 - <<'PY'
r = lambda k: float(open(f"/tmp/madoguchi-bench-{k}.rate").read())
import os
for c in (1, 8):
    line = f"ratios c={c}: madoguchi/sqlite {r(f'sqlite-{c}')/r(f'postfix-{c}'):.2f}× Postfix, madoguchi/postgres {r(f'postgres-{c}')/r(f'postfix-{c}'):.2f}× Postfix"
    if os.environ.get("MADDY"):
        line += f"; {r(f'sqlite-{c}')/r(f'maddy-{c}'):.2f}× and {r(f'postgres-{c}')/r(f'maddy-{c}'):.2f}× maddy"
    print(line)
PY
