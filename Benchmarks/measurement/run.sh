#!/bin/sh
# The measurement benchmark (issue 19): one funnel and an attribution report with all six models over a store of
# 1,000,000 events of 200,000 people, with the release `tessera`; wall time and peak RSS of each report.
#
#   swift build -c release --product tessera
#   flock -x /tmp/tessera-cpu.lock Benchmarks/measurement/run.sh [DIR] [EVENTS] [PEOPLE]
#
# Builds DIR/events.ndjson and DIR/store.sqlite once (kept for reruns), then times the reports three times each.
# WINDOWS="1d 30d 90d" also times one run of each report with the funnel window and the look-back set to each.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-/tmp/measurement}
events=${2:-1000000}
people=${3:-200000}
tessera=${TESSERA:-$root/.build/release/tessera}
mkdir -p "$dir"
export MEASURE_EVENTS="$dir/events.ndjson"
if [ ! -f "$dir/events.ndjson" ]; then
  python3 "$here/generate.py" "$dir/events.ndjson" --events "$events" --people "$people"
fi
if [ ! -f "$dir/store.sqlite" ]; then
  "$tessera" run "$here/pipeline.yaml" --store "$dir/store.sqlite" --now 2026-12-01T00:00:00Z | tail -3
fi
for report in checkout credit; do
  for i in 1 2 3; do
    /usr/bin/time -f "$report run $i: %e s wall, %U s user, %S s sys, %M KiB peak RSS" \
      "$tessera" report "$here/pipeline.yaml" "$report" --store "$dir/store.sqlite" --format json > "$dir/$report.json"
  done
done
for w in ${WINDOWS:-}; do
  for report in checkout credit; do
    sed "s/window: 7d/window: $w/; s/lookback: 30d/lookback: $w/" "$here/pipeline.yaml" > "$dir/pipeline-$w.yaml"
    /usr/bin/time -f "$report window/look-back $w: %e s wall, %U s user, %M KiB peak RSS" \
      "$tessera" report "$dir/pipeline-$w.yaml" "$report" --store "$dir/store.sqlite" --format json > "$dir/$report-$w.json"
  done
done
"$tessera" report "$here/pipeline.yaml" checkout --store "$dir/store.sqlite" --by all
"$tessera" report "$here/pipeline.yaml" credit --store "$dir/store.sqlite" --by people,devices --paths 5
