#!/usr/bin/env bash
# Issue 23: `tessera link --train` and Splink 5 on the same 1,000,000-record person files, back to back.
# Usage (from the repository root, after the release builds in docs/BENCHMARKS.md):
#   Benchmarks/linkage/run.sh [OUT_DIR]
# Writes OUT_DIR/*.txt (default /tmp/linkage) and prints the summary lines. Needs `pip install splink`
# (or SPLINK_PYTHON pointing at a Python that has it).
set -euo pipefail
out=${1:-/tmp/linkage}
mkdir -p "$out"
people=${PEOPLE:-Benchmarks/.build/release/tessera-people}
tessera=${TESSERA:-.build/release/tessera}
python=${SPLINK_PYTHON:-python3}
[ -f "$out/people_1m.csv" ] || "$people" --records 1000000 --seed 7 --out "$out/people_1m.csv"
[ -f "$out/people_1m_hard.csv" ] || "$people" --records 1000000 --seed 7 --noise hard --out "$out/people_1m_hard.csv"
echo "nproc $(nproc)"
run() {  # name file rules
  /usr/bin/time -f '%e s wall, %M KB max RSS' "$tessera" link "$out/$2" --rules "$3" --train \
    --params-out "$out/$1.params.yaml" --truth-column cluster_id --out "$out/$1.clusters.csv" >"$out/$1.txt" 2>&1
  echo "$1: $(grep -E '^against' "$out/$1.txt")"
  echo "$1: $(grep -E '^time:' "$out/$1.txt"); $(tail -1 "$out/$1.txt")"
}
run naive people_1m.csv Benchmarks/linkage/people-naive.yaml
run naive-hard people_1m_hard.csv Benchmarks/linkage/people-naive.yaml
run people people_1m.csv rules/people.yaml
run people-hard people_1m_hard.csv rules/people.yaml
for file in ${SPLINK_FILES:-people_1m.csv}; do
  /usr/bin/time -f '%e s wall, %M KB max RSS' "$python" Benchmarks/linkage/splink_people.py "$out/$file" \
    --rules naive >"$out/splink-$file.txt" 2>&1
  echo "splink $file: $(grep -E '^(cluster|time)' "$out/splink-$file.txt" | tr '\n' ' ')$(tail -1 "$out/splink-$file.txt")"
done
