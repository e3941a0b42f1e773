#!/usr/bin/env bash
# One daemon against two on one PostgreSQL (issue #8, 2c), same machine,
# same load tool and mix (the corpus mix: plain, Japanese, PGP, forwarded,
# ARF), loopback only. Prints messages/s end to end for each and the ratio;
# the filing test TestTwoDaemonsOnePostgres proves nothing is filed twice.
#
#   scripts/bench-scaleout.sh [N] [CPUS]   (default 2000, no quota)
#
# With CPUS (e.g. 0.4) each daemon runs in its own cgroup limited to that
# many CPUs (needs root and the cgroup cpu controller, v1 or v2): a stand-in
# for daemons on separate machines, so that what the shared PostgreSQL does
# to their sum shows even on a machine whose cores one daemon could fill.
# PostgreSQL and the load tool are not limited. (Run here on cgroup v1; the
# v2 branch, cpu.max, has not been run.)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000}"
CPUS="${2:-}"
work=$(mktemp -d /tmp/madoguchi-scale.XXXX)
pids=()
cgroups=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for g in "${cgroups[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# cgroup NAME: makes a cgroup limited to $CPUS CPUs and sets CGPROCS to its
# cgroup.procs file.
cgroup() {
  local quota; quota=$(python3 -c "print(int(float('$CPUS')*10000))")
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then # v2
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    local g=/sys/fs/cgroup/madoguchi-$1-$$
    mkdir "$g"; cgroups+=("$g")
    echo "$quota 10000" > "$g/cpu.max"
  else # v1
    local g=/sys/fs/cgroup/cpu/madoguchi-$1-$$
    mkdir "$g"; cgroups+=("$g")
    echo 10000 > "$g/cpu.cfs_period_us"
    echo "$quota" > "$g/cpu.cfs_quota_us"
  fi
  CGPROCS="$g/cgroup.procs"
}
# throttled: how often the quota held each daemon back, so a run shows the
# limit was what bounded it.
throttled() {
  for g in "${cgroups[@]}"; do
    [ -f "$g/cpu.stat" ] || continue
    awk -v g="${g##*/}" '$1=="nr_periods"{p=$2} $1=="nr_throttled"{t=$2} END{printf "%s: throttled in %d of %d quota periods\n", g, t, p}' "$g/cpu.stat" >&2
    rmdir "$g" 2>/dev/null || true
  done
  cgroups=()
}
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
  if [ -n "$CPUS" ]; then
    cgroup "$1"; local procs=$CGPROCS
    # The shell joins the cgroup before it becomes the daemon, so every
    # thread the daemon starts is born inside it.
    sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$procs" \
      "$work/madoguchi" --config "$work/$1.yaml" serve 2>"$work/$1.log" &
  else
    "$work/madoguchi" --config "$work/$1.yaml" serve 2>"$work/$1.log" &
  fi
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "serving smtp=" "$work/$1.log" && break; sleep 0.1; done
  SMTP="127.0.0.1:$smtp" HTTP="127.0.0.1:$http"
}
fresh() { psql -h 127.0.0.1 -U postgres -qc "SET client_min_messages=warning" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db" >/dev/null; }
fresh
start one; s1=$SMTP h1=$HTTP
"$work/madoguchi-bench" --corpus testdata/corpus/messages --smtp "$s1" --http "$h1" -n "$N" -c 8 --json > "$work/one.json"
for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; pids=()
throttled
fresh
start a; s1=$SMTP h1=$HTTP
start b; s2=$SMTP h2=$HTTP
"$work/madoguchi-bench" --corpus testdata/corpus/messages --smtp "$s1,$s2" --http "$h1,$h2" -n "$N" -c 8 --json > "$work/two.json"
for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; pids=()
throttled
# What the two left in the store: every message spooled once and done, one
# report per message, unique tickets, at most one acknowledgement per report,
# and how many daemons' workers did the filing.
psql -h 127.0.0.1 -U postgres -d "$db" -At -F ' ' -c "SELECT
  (SELECT count(*) FROM spool), (SELECT count(*) FROM queue WHERE state = 'done'),
  (SELECT count(*) FROM reports), (SELECT count(*) - count(DISTINCT spool_id) FROM reports),
  (SELECT count(*) - count(DISTINCT ticket) FROM incidents),
  (SELECT count(*) FROM (SELECT report_id FROM outbox WHERE kind = 'ack' GROUP BY report_id HAVING count(*) > 1) x),
  (SELECT count(DISTINCT split_part(worker, '/', 2)) FROM queue)" |
  { read -r spooled done reports twice tickets acks daemons
    echo "two daemons' store: spooled $spooled, done $done, reports $reports, filed twice $twice, tickets repeated $tickets, reports acknowledged twice $acks, filed by $daemons daemons"; }
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
python3 - "$work/one.json" "$work/two.json" "$CPUS" <<'PY'
import json, sys
one, two = (json.load(open(p)) for p in sys.argv[1:3])
for name, r in (("one daemon ", one), ("two daemons", two)):
    print(f"{name}: accepted {r['send_msgs_per_s']:6.0f} msg/s, filed end to end {r['end_to_end_msgs_per_s']:6.0f} msg/s, 250→filed p99 {r['received_to_filed_p99_ms']:7.1f} ms, RSS {r['daemon_peak_rss_mib']:.0f} MiB")
if sys.argv[3]:
    print(f"each daemon limited to {sys.argv[3]} CPUs")
print(f"ratio two/one (end to end): {two['end_to_end_msgs_per_s']/one['end_to_end_msgs_per_s']:.2f}×")
PY
