"""Benchmark: aggregate a 10,000-row judgment shard from 20 annotators.

Measures read + validate + aggregate + agreement statistics (`ingest_shards`),
and, side by side on the same file, a plain-Python baseline that reads the rows
and does the same decision logic (latest pass, gold accuracy, exclusion,
majority with thresholds, adjudication) in dict loops. Best of --repeat runs.
The last line is JSON; ratio_vs_python_loop = python_loop_s / aggregate_s
(> 1 means prefmix is faster). The end-to-end comparison flatters the loop
(prefmix also validates every row, hashes record ids and computes alpha per
shard, domain and review pass), so the aggregation-only pair is shown too.

    .venv/bin/python bench/annotations.py [--rows 10000] [--annotators 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

# this file is named like the package it measures: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from prefmix.annotations.aggregate import aggregate  # noqa: E402
from prefmix.annotations.ingest import ingest_shards  # noqa: E402
from prefmix.annotations.readers import read_shard  # noqa: E402
from prefmix.config import Aggregation, HumanShard  # noqa: E402

DOMAINS = ["general", "finance", "medicine", "law"]
POLICY = Aggregation(min_annotators=3, min_agreement=0.6, min_gold_accuracy=0.7)


def make_shard(path: Path, rows: int, annotators: int, seed: int = 0) -> Path:
    """~5 annotators per item, 10% gold items, one weak annotator, a second pass on some items."""
    rng = random.Random(seed)
    people = [f"ann{i:02d}" for i in range(annotators)]
    out: dict[str, list[Any]] = defaultdict(list)
    item = 0
    while len(out["item_id"]) < rows:
        truth = rng.choice("ab")
        gold = rng.random() < 0.1
        domain = DOMAINS[item % 4]
        for who in rng.sample(people, 5):
            accuracy = 0.35 if who == people[-1] else 0.85
            vote = truth if rng.random() < accuracy else rng.choice(["a", "b", "tie"])
            for key, value in (
                ("item_id", f"it{item:06d}"), ("prompt", f"Question {item} about {domain}?"), ("domain", domain),
                ("response_a", f"Answer A to {item}."), ("response_b", f"Answer B to {item}, longer."), ("annotator_id", who),
                ("preference", vote), ("review_pass", 1 if rng.random() < 0.9 else 2), ("is_gold", gold),
                ("gold_answer", truth if gold else None), ("adjudicated_label", truth if rng.random() < 0.02 else None),
            ):
                out[key].append(value)
            if len(out["item_id"]) >= rows:
                break
        item += 1
    pq.write_table(pa.table(dict(out)), path)
    return path


def python_loop(path: Path, policy: Aggregation) -> dict[str, int]:
    """The baseline end to end: read the rows into dicts, then decide."""
    return python_decide(pq.read_table(path).to_pylist(), policy)


def python_decide(rows: list[dict[str, Any]], policy: Aggregation) -> dict[str, int]:
    """The baseline's decisions, row by row in Python, on rows already in memory."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for index, row in enumerate(rows):
        key = (row["item_id"], row["annotator_id"])
        seen = latest.get(key)
        if seen is None or (row["review_pass"], index) >= (seen["review_pass"], seen["_i"]):
            latest[key] = {**row, "_i": index}
    gold: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in latest.values():
        if row["is_gold"]:
            gold[row["annotator_id"]][0] += 1
            gold[row["annotator_id"]][1] += row["preference"] == row["gold_answer"]
    excluded = {a for a, (n, ok) in gold.items() if ok / n < policy.min_gold_accuracy}
    items: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        entry = items.setdefault(row["item_id"], {"gold": False, "adj": None, "adj_key": (-1, -1), "votes": Counter()})
        entry["gold"] |= row["is_gold"]
        if row["adjudicated_label"] is not None and (row["review_pass"], index) > entry["adj_key"]:
            entry["adj"], entry["adj_key"] = row["adjudicated_label"], (row["review_pass"], index)
    for row in latest.values():
        if row["annotator_id"] not in excluded:
            items[row["item_id"]]["votes"][row["preference"]] += 1
    outcome: Counter[str] = Counter()
    for entry in items.values():
        votes, n = entry["votes"], sum(entry["votes"].values())
        top = max(votes.values(), default=0)
        leaders = [label for label, count in votes.items() if count == top]
        if entry["gold"]:
            outcome["gold_item"] += 1
        elif entry["adj"] is not None:
            outcome["adjudicated_tie" if entry["adj"] == "tie" else "pair"] += 1
        elif n == 0:
            outcome["no_counted_annotators"] += 1
        elif n < policy.min_annotators:
            outcome["too_few_annotators"] += 1
        elif len(leaders) > 1 or leaders[0] == "tie":
            outcome["tie"] += 1
        elif top / n < policy.min_agreement:
            outcome["low_agreement"] += 1
        else:
            outcome["pair"] += 1
    return dict(outcome)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_shard(Path(tmp) / "judgments.parquet", args.rows, args.annotators)
        shard = HumanShard(path=str(path), layout="judgments", vendor="bench")
        ingest_shards([shard], DOMAINS, POLICY)  # warm-up: imports, Polars thread pool
        full_s, result = best_of(args.repeat, lambda: ingest_shards([shard], DOMAINS, POLICY))
        read = read_shard(shard, DOMAINS)
        agg_s, _ = best_of(args.repeat, lambda: aggregate(read, POLICY))
        loop_s, loop = best_of(args.repeat, lambda: python_loop(path, POLICY))
        rows = pq.read_table(path).to_pylist()
        decide_s, _ = best_of(args.repeat, lambda: python_decide(rows, POLICY))
    totals = result.stats["totals"]
    ours = {"pair": totals["pairs_out"], **totals["rejected_by_reason"]}
    same = ours == loop
    print(f"{args.rows:,} judgment rows, {args.annotators} annotators, {totals['items_in']:,} items (best of {args.repeat})")
    print("  end to end (read the file, decide; prefmix also validates, builds records, computes agreement stats):")
    print(f"    prefmix ingest_shards                 : {full_s * 1000:9.1f} ms")
    print(f"    plain-Python loop                     : {loop_s * 1000:9.1f} ms   ratio {loop_s / full_s:6.2f}x")
    print("  aggregation only (rows already in memory; prefmix also builds canonical records with ids):")
    print(f"    prefmix aggregate()                   : {agg_s * 1000:9.1f} ms")
    print(f"    plain-Python loop                     : {decide_s * 1000:9.1f} ms   ratio {decide_s / agg_s:6.2f}x")
    print(f"  same outcome counts as the baseline     : {same} {ours}")
    print(json.dumps({
        "rows": args.rows, "annotators": args.annotators, "items": totals["items_in"],
        "aggregate_s": round(full_s, 4), "python_loop_s": round(loop_s, 4), "ratio_vs_python_loop": round(loop_s / full_s, 3),
        "aggregate_only_s": round(agg_s, 4), "python_decide_s": round(decide_s, 4), "ratio_aggregate_only": round(decide_s / agg_s, 3),
        "same_outcomes": same, "under_1s": full_s < 1.0,
    }))


if __name__ == "__main__":
    main()
