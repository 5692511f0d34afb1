#!/bin/bash
# One round of a pipeline benchmark: each given tessera-bench binary runs MODE over the same generated 1M-event
# file, under the exclusive CPU lock and /usr/bin/time, then DuckDB loads that file (the issue 18 floor).
# Alternate the binaries' order between rounds; this machine is noisy, so only same-round ratios count.
#
#   swift build -c release --package-path Benchmarks --product tessera-bench   # copy each build aside
#   Benchmarks/rounds.sh sqlite-retail /tmp/bench-before /tmp/bench-after       # MODE: see tessera-bench
#
# Prints per run: events/s, wall, user and sys CPU, peak RSS, the SQLite store's size at rest, load average.
# Needs `pip install duckdb` for the last line.
set -u
export SWIFT_DETERMINISTIC_HASHING=1
MODE=$1
shift
EVENTS=${EVENTS:-1000000}
DIR=${TMPDIR:-/tmp}/tessera-bench-$EVENTS
for b in "$@"; do
  out=$(flock -x /tmp/tessera-cpu.lock /usr/bin/time -f "TIME %e s wall, %U s user, %S s sys, %M KiB" \
    "$b" "$MODE" --events "$EVENTS" 2>&1)
  rate=$(echo "$out" | grep -o "[0-9.]* s, [0-9]* events/s")
  t=$(echo "$out" | grep TIME)
  size=$(ls -l "$DIR/bench.sqlite" 2>/dev/null | awk '{print $5}')
  echo "$(date +%H:%M:%S) $b $MODE: $rate | $t | store $size | load $(cut -d' ' -f1 /proc/loadavg)"
done
rm -f /tmp/rounds.duckdb
flock -x /tmp/tessera-cpu.lock /usr/bin/time -f "TIME %e s wall, %U s user, %M KiB" python3 -c \
  "import duckdb; c=duckdb.connect('/tmp/rounds.duckdb'); c.execute(\"create table t as select * from read_json('$DIR/events.ndjson')\")" \
  2>&1 | grep TIME | sed "s/^/$(date +%H:%M:%S) duckdb: /"
rm -f /tmp/rounds.duckdb
