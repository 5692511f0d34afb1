"""Splink 5 (DuckDB backend) on a `tessera-people` file, with the comparisons and blocking of a Tessera rule file.

The peer of `tessera link FILE --rules RULES --train --truth-column cluster_id` in docs/BENCHMARKS.md:
the same records, the same blocking rules (on the raw values, as Tessera's keys are), the same comparison
levels on values folded as Tessera folds them (trimmed, lowercased, accents removed, inner spaces collapsed),
u from 1,000,000 random pairs (seed 42), m by expectation-maximisation on every blocking rule that trains,
then pairs scored at or above the review threshold and clustered at the merge threshold. It prints the
wall time of each step and the pairwise precision, recall and F1 of the clusters against `cluster_id`.

    pip install splink            # Splink 5 with DuckDB
    python3 Benchmarks/linkage/splink_people.py FILE [--rules naive] [--threads 2]

`--rules naive` mirrors Benchmarks/linkage/people-naive.yaml (the only rule mirrored so far).
"""

import argparse
import time

import duckdb
import splink
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

FIELDS = ["first_name", "last_name", "date_of_birth", "email", "phone", "postcode", "city", "street"]


def folded(column):
    """Tessera's folding of compared values: trim, lowercase, remove accents, collapse inner spaces."""
    return (
        f"nullif(regexp_replace(lower(strip_accents(trim({column}))), '\\s+', ' ', 'g'), '') AS {column}_f"
    )


def jaro_winkler(column, thresholds, tf=False):
    exact = cll.ExactMatchLevel(f"{column}_f", term_frequency_adjustments=tf)
    levels = [cll.NullLevel(f"{column}_f"), exact]
    levels += [cll.JaroWinklerLevel(f"{column}_f", t) for t in thresholds]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels, output_column_name=column)


def naive_settings():
    dob = "date_of_birth_f"
    comparisons = [
        jaro_winkler("first_name", [0.92, 0.80], tf=True),
        jaro_winkler("last_name", [0.92, 0.80]),
        cl.CustomComparison(
            output_column_name="date_of_birth",
            comparison_levels=[
                cll.NullLevel(dob),
                cll.ExactMatchLevel(dob),
                cll.DamerauLevenshteinLevel(dob, 1),
                # Tessera's `within 1 year` is 365 days (1 × 365.25, rounded down).
                cll.AbsoluteDateDifferenceLevel(dob, input_is_string=True, threshold=365, metric="day"),
                cll.ElseLevel(),
            ],
        ),
        cl.LevenshteinAtThresholds("email_f", [2]),
        cl.LevenshteinAtThresholds("phone_f", [1]),
        cl.ExactMatch("postcode_f"),
        jaro_winkler("city", [0.90]),
        jaro_winkler("street", [0.90]),
    ]
    blocking = [
        block_on("first_name", "last_name"),
        block_on("date_of_birth"),
        block_on("email"),
        block_on("phone"),
        block_on("postcode", "last_name"),
        block_on("street"),
        block_on("postcode", "first_name"),
    ]
    # Every rule trains m (none is marked `train: false`).
    return comparisons, blocking, blocking, 0.99, 0.90


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--rules", choices=["naive"], default="naive")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--random-pairs", type=int, default=1_000_000)
    args = parser.parse_args()

    timings = []
    clock = time.perf_counter()
    started = clock

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        timings.append(f"{name} {now - clock:.2f}s")
        clock = now

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    raw = ", ".join(FIELDS)
    clean = ", ".join(folded(f) for f in FIELDS)
    con.execute(
        f"CREATE TABLE people AS SELECT record_id AS unique_id, cluster_id AS truth, {raw}, {clean} "
        f"FROM read_csv('{args.file}', all_varchar = true, header = true)"
    )
    lap("load")

    comparisons, blocking, training, merge, review = naive_settings()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    db_api = DuckDBAPI(con)
    linker = Linker(db_api.register("people"), settings, log_level="WARNING")
    # The prior from the records that share an email (most do not), as Splink's tutorials do.
    linker.training.estimate_probability_two_random_records_match([block_on("email")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=args.random_pairs, seed=42)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    lap("train")
    predictions = linker.inference.predict(threshold_match_probability=review)
    lap("predict")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=merge
    )
    table = clusters.physical_name
    lap("cluster")
    total = time.perf_counter() - started

    # Pairwise precision and recall of the clusters, as `tessera link --truth-column` reports them.
    pairs = "sum(n * (n - 1) / 2)"
    con.execute(f"CREATE VIEW assigned AS SELECT c.cluster_id AS predicted, p.truth AS truth FROM {table} c "
                "JOIN people p ON p.unique_id = c.unique_id")
    tp = con.execute(f"SELECT {pairs} FROM (SELECT count(*) AS n FROM assigned GROUP BY predicted, truth)").fetchone()[0]
    predicted = con.execute(f"SELECT {pairs} FROM (SELECT count(*) AS n FROM assigned GROUP BY predicted)").fetchone()[0]
    actual = con.execute(f"SELECT {pairs} FROM (SELECT count(*) AS n FROM assigned GROUP BY truth)").fetchone()[0]
    precision = tp / predicted if predicted else 0
    recall = tp / actual if actual else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0
    scored = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchone()[0]
    print(f"splink {splink.__version__}, duckdb {duckdb.__version__}, {args.threads} threads, rules {args.rules}")
    print(f"{scored} pairs at or above review {review}; clusters at merge {merge}")
    print(f"cluster precision {precision:.4f}, recall {recall:.4f}, F1 {f1:.4f}")
    print("time: " + ", ".join(timings) + f", total {total:.2f}s")


if __name__ == "__main__":
    main()
