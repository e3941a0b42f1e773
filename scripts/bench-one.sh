#!/usr/bin/env bash
# bench-one.sh BIN STORE RATE: a fresh daemon of BIN on a fresh store (sqlite or
# postgres on 127.0.0.1:5432), one load-tool run of 20 KiB reports over 8
# connections (RATE 0: full speed, 3,000; else 2,000 at RATE/s) after 300 of
# warm-up; prints the tool's JSON. Alternate two binaries to compare them.
set -euo pipefail
bin=$1 store=$2 rate=$3
d=$(mktemp -d)
if [ "$store" = postgres ]; then
  db=bench_$RANDOM$RANDOM
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
  dsn="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
else
  dsn=$d/m.db
fi
cat > $d/m.yaml <<Y
store: {driver: $store, dsn: "$dsn"}
intake: {smtp: {listen: 127.0.0.1:2525, recipients: [csirt@example.org], max_messages_per_connection: 2000}}
notify: {outbox_dir: $d/outbox}
http: {listen: 127.0.0.1:8025}
Y
$bin --config $d/m.yaml serve 2>$d/log &
pid=$!
for i in $(seq 1 100); do grep -q serving $d/log 2>/dev/null && break; sleep 0.1; done
n=3000
if [ "$rate" != 0 ]; then n=2000; fi
${BENCH:-bin/madoguchi-bench} --size 20480 -c 8 --per-conn 1000 --warmup 300 -n $n --rate $rate --json 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
if [ "$store" = postgres ]; then psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null; fi
rm -rf $d
