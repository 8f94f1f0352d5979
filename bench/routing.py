"""Benchmark: does routing spend human labels where the judge fails?

A seeded simulated pool (prefmix.routing.samples) where the judge is wrong on known slices: ordinary pairs
8% of the time (and then the other judges tend to disagree, flip with the order, and the margin is small),
all of one domain (law) 45% of the time with no sign in the votes (every judge shares the blind spot), and
long answers 40% of the time (every judge shares the length bias). Simulated annotators answer every task
(k = 3 of 5 people, error rates 5-20%).

Routing runs two rounds of `--tasks` tasks (10% gold, a per-domain minimum): round 1 on the prior, round 2
after learning from round 1's labels. Random selection gets the same number of tasks, the same gold share
and the same annotators. A judge error found is a routed task whose people's verdict is not the judge's pick;
it is counted per human label paid for (gold labels included). The last line is JSON; `ratio` is routing's
judge errors found per human label over both rounds divided by random's.

    .venv/bin/python bench/routing.py [--pool 20000] [--tasks 500] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import polars as pl

# this file is named like the package it measures: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from prefmix.config import parse  # noqa: E402
from prefmix.routing import learn, samples  # noqa: E402
from prefmix.routing.candidates import GOLD_SCHEMA  # noqa: E402
from prefmix.routing.plan import plan_queue  # noqa: E402
from prefmix.routing.queue import Queue, QueueItem  # noqa: E402
from prefmix.records import record_id  # noqa: E402


def gold_pool(n: int, seed: int) -> pl.DataFrame:
    frame = samples.gold(n, seed)
    ids = [record_id(p, a, b) for p, a, b in zip(frame["prompt"], frame["response_a"], frame["response_b"])]
    return frame.with_columns(gold_id=pl.Series(ids), gold_source=pl.lit("bench")).select(list(GOLD_SCHEMA))


def found(votes: pl.DataFrame) -> dict[str, float]:
    """Judge errors people found, per label (gold labels counted as paid labels)."""
    rows = learn.labels(votes)
    labels = votes.height
    errors = int(rows.get_column("wrong").sum()) if rows.height else 0
    return {"labels": labels, "judge_errors": errors, "errors_per_label": errors / labels if labels else 0.0}


def random_queue(pool: pl.DataFrame, gold: pl.DataFrame, tasks: int, gold_share: float, k: int, seed: int) -> Queue:
    rng = random.Random(seed)
    g = int(tasks * gold_share + 0.5)
    ids = pool.get_column("record_id").to_list()
    picked = set(rng.sample(ids, tasks - g))
    rows = pool.filter(pl.col("record_id").is_in(list(picked)))
    items = [QueueItem(task_id=f"rand-{r['record_id'][:20]}", record_id=r["record_id"], prompt=r["prompt"], response_a=r["chosen"],
                       response_b=r["rejected"], domain=r["domain"], judge_choice="a", judge_confidence=0.5, route_score=0.0,
                       route_reason="random", annotators=k) for r in rows.iter_rows(named=True)]
    gold_rows = gold.sample(n=g, seed=seed, shuffle=True)
    items += [QueueItem(task_id=f"rand-g{r['gold_id'][:20]}", record_id=r["gold_id"], prompt=r["prompt"], response_a=r["response_a"],
                        response_b=r["response_b"], domain=r["domain"], judge_choice=None, route_score=0.0, route_reason="gold",
                        is_gold=True, gold_label=r["gold_answer"], show_suggestion=False, annotators=k)
              for r in gold_rows.iter_rows(named=True)]
    return Queue(queue_id="random", items=items, seed=seed)


def one(seed: int, pool_size: int, tasks: int) -> dict[str, float]:
    """Both rounds of routing and the random baseline on one seeded pool; prints what each found."""
    config = parse({"domains": list(samples.DOMAINS), "seed": seed, "routing": {
        "budget": {"tasks": tasks}, "gold_share": 0.1, "min_per_domain": 20, "annotators": 3,
        "anchoring": {"hidden_share": 0.25}}})
    routing = config.routing
    began = time.perf_counter()
    pool, truth = samples.pool(samples.PoolSpec(n=pool_size, seed=seed))
    gold = gold_pool(400, seed)
    build_s = time.perf_counter() - began

    prior = learn.fit(pl.DataFrame(), routing)
    began = time.perf_counter()
    first = plan_queue(pool, gold, routing, prior, [], seed)
    plan_s = time.perf_counter() - began
    votes1 = samples.votes(first.queue, truth, seed=seed)
    learned = learn.fit(learn.labels(votes1), routing)
    rest = pool.filter(~pl.col("record_id").is_in([i.record_id for i in first.queue.items]))
    second = plan_queue(rest, gold, routing, learned, [], seed)
    votes2 = samples.votes(second.queue, truth, seed=seed + 1)
    control = plan_queue(rest, gold, routing, prior, [], seed)  # round 2 as if nothing had been learned
    votes_control = samples.votes(control.queue, truth, seed=seed + 1)

    rand = random_queue(pool, gold, 2 * tasks, routing.gold_share, routing.annotators, seed)
    rand_votes = samples.votes(rand, truth, seed=seed)
    r1, r2, rc, rr = found(votes1), found(votes2), found(votes_control), found(rand_votes)
    both = found(pl.concat([votes1, votes2]))
    pool_error = sum(1 for v in truth.values() if v == "b") / len(truth)

    def line(name: str, got: dict[str, float], queue: Queue) -> str:
        wrong = sum(1 for i in queue.items if not i.is_gold and truth[i.record_id] == "b")
        routed = max(1, sum(1 for i in queue.items if not i.is_gold))
        law = sum(1 for i in queue.items if i.domain == "law" and not i.is_gold) / routed
        return (f"  {name:<22} {got['judge_errors']:>4} judge errors found / {got['labels']} labels = "
                f"{got['errors_per_label']:.3f} per label (truly wrong: {wrong}/{routed} tasks; law {law:.0%})")

    print(f"seed {seed}: {pool_size} pairs, the judge wrong on {pool_error:.1%} (law 45%, long answers 40%, others 8%); "
          f"pool built in {build_s:.1f} s, a plan of {tasks} tasks in {plan_s:.2f} s")
    print(line("round 1 (prior)", r1, first.queue))
    print(line("round 2 (learned)", r2, second.queue))
    print(line("round 2 without learning", rc, control.queue))
    print(line("random (both rounds)", rr, rand))
    print("  learned: " + ", ".join(f"{k} {v:.2f}" for k, v in learned.weights.items())
          + f"; law base error {learn.sigmoid(learned.intercept('law')):.2f}")
    ratio = both["errors_per_label"] / rr["errors_per_label"] if rr["errors_per_label"] else float("inf")
    return {"ratio": ratio, "routing": both["errors_per_label"], "random": rr["errors_per_label"],
            "round1": r1["errors_per_label"], "round2": r2["errors_per_label"], "round2_unlearned": rc["errors_per_label"],
            "labels": both["labels"], "plan_s": plan_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=500, help="tasks per round (two rounds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    runs = [one(seed, args.pool, args.tasks) for seed in args.seeds]
    ratios = [r["ratio"] for r in runs]
    mean = lambda key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    print(json.dumps({
        "ratio": round(min(ratios), 3),  # the worst seed: routing must win on every pool
        "ratio_mean": round(sum(ratios) / len(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "routing_errors_per_label": round(mean("routing"), 4),
        "random_errors_per_label": round(mean("random"), 4),
        "round1_errors_per_label": round(mean("round1"), 4),
        "round2_errors_per_label": round(mean("round2"), 4),
        "round2_unlearned_errors_per_label": round(mean("round2_unlearned"), 4),
        "labels_each": runs[0]["labels"],
        "pool": args.pool,
        "tasks_per_round": args.tasks,
        "plan_s": round(mean("plan_s"), 3),
        "seeds": args.seeds,
    }))
    return 0 if min(ratios) >= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
