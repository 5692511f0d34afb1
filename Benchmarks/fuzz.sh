#!/bin/sh
# Fuzzing at scale (issue 22): TOTAL generated inputs per target (a million by default) with `tessera-fuzz`, in
# pieces of PIECE inputs. Each input is made from the seed and its index alone, so a piece that fails can be run
# again by itself with the `--first` and `--count` its report names.
#
#   Benchmarks/fuzz.sh                          # tracking files yaml formats, seed 22, 1,000,000 each
#   SEED=7 TOTAL=20000 Benchmarks/fuzz.sh yaml  # one target, another seed, fewer inputs
#   START=400000 Benchmarks/fuzz.sh tracking    # go on from input 400,000 (an earlier run did the first ones)
#
# `files` counts records: a run reads three files (CSV, and NDJSON twice) of RECORDS records each, so it runs
# TOTAL / (3 × RECORDS) pipelines. Each piece's report goes to stdout; the last line per target sums them up.
# Exit status 1 when any input broke a promise.
set -eu
cd "$(dirname "$0")/.."
SEED=${SEED:-22}
TOTAL=${TOTAL:-1000000}
PIECE=${PIECE:-100000}
RECORDS=${RECORDS:-1000}
CLIENTS=${CLIENTS:-8}
START=${START:-0}
TARGETS=${*:-tracking files yaml formats}

# SKIP_BUILD=1: use the tessera-fuzz already built (a second run while the sources change).
[ "${SKIP_BUILD:-0}" = 1 ] || swift build -c release --package-path Benchmarks --product tessera-fuzz >&2
F=${FUZZ:-Benchmarks/.build/release/tessera-fuzz}  # FUZZ=PATH: a copy, so a rebuild cannot swap it mid-run
echo "seed $SEED, $TOTAL inputs per target in pieces of $PIECE, cores=$(nproc), $(date -u +%Y-%m-%dT%H:%MZ)"
status=0
for target in $TARGETS; do
  per=1
  [ "$target" = files ] && per=$((3 * RECORDS))
  runs=$(((TOTAL + per - 1) / per))
  piece=$(((PIECE + per - 1) / per))
  first=$((START / per))
  : >"${TMPDIR:-/tmp}/tessera-fuzz-$target.log"
  while [ "$first" -lt "$runs" ]; do
    count=$piece
    [ $((first + count)) -gt "$runs" ] && count=$((runs - first))
    "$F" "$target" --seed "$SEED" --first "$first" --count "$count" --clients "$CLIENTS" --records "$RECORDS" \
      | tee -a "${TMPDIR:-/tmp}/tessera-fuzz-$target.log" || status=1
    first=$((first + count))
  done
  # The first line of each report: `TARGET: inputs A..<B of seed S, N in T s (R/s), F failures`.
  awk -v t="$target" '$1 == t":" && $2 == "inputs" {
      n += $7; s += $9; f += $(NF - 1)
    } END {
      printf "%s total: %d inputs in %.0f s (%.0f/s), %d failures\n", t, n, s, (s > 0 ? n / s : 0), f
    }' "${TMPDIR:-/tmp}/tessera-fuzz-$target.log"
done
exit $status
