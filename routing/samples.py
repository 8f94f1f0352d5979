"""A seeded, simulated pool of synthetic pairs where the judge is wrong on known slices (tests, the benchmark).

Three judges ("judge-a", the one that made the pair, and "judge-b", "judge-c") read every pair in both orders.
Whether the pair's chosen is really worse ("the judge is wrong") depends on the slice:

- ordinary pairs: wrong with `base_error`; the other judges are independent (right with `peer_accuracy`), so
  a wrong pair tends to show disagreement, order flips and a small margin;
- `slice_domain` (default law): wrong with `slice_error`, and every judge shares the blind spot (they all vote
  for the chosen with a confident margin): nothing in the votes shows it, only the domain's agreement does;
- long answers (`long_share` of the pairs, chosen 2.5-4x the rejected's length): wrong with `long_error`, every
  judge shares the length bias: only the length ratio shows it.

Returns canonical records (through prefmix.records) with `generation.judge_votes`, expected scores and finish
reasons, and the truth per record: the better response in prefmix order ("a" = chosen, "b" = rejected).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from prefmix.records import conform, with_record_id

if TYPE_CHECKING:
    from prefmix.routing.queue import Queue

DOMAINS = ("general", "finance", "medicine", "law", "code")
JUDGES = ("judge-a", "judge-b", "judge-c")


@dataclass(frozen=True)
class PoolSpec:
    n: int = 2000
    seed: int = 0
    domains: tuple[str, ...] = DOMAINS
    base_error: float = 0.08
    slice_domain: str = "law"
    slice_error: float = 0.45
    long_share: float = 0.12
    long_error: float = 0.4
    peer_accuracy: float = 0.8
    tag: str = "sim"


def _vote(judge: str, order: str, winner: str, chosen: float, rejected: float) -> dict[str, object]:
    return {"judge": judge, "order": order, "chosen_score": chosen, "rejected_score": rejected, "winner": winner}


def pool(spec: PoolSpec = PoolSpec()) -> tuple[pl.DataFrame, dict[str, str]]:
    """(canonical synthetic records, record_id -> the truly better response "a"/"b")."""
    rng = random.Random(spec.seed)
    rows: list[dict[str, object]] = []
    wrong_flags: list[bool] = []
    for i in range(spec.n):
        domain = spec.domains[i % len(spec.domains)]
        long = rng.random() < spec.long_share
        in_slice = domain == spec.slice_domain
        p_wrong = spec.slice_error if in_slice else spec.long_error if long else spec.base_error
        wrong = rng.random() < p_wrong
        blind = in_slice or long  # every judge shares the blind spot: the votes look confident
        base_len = rng.randint(40, 160)
        chosen_len = int(base_len * rng.uniform(2.5, 4.0)) if long else int(base_len * rng.uniform(0.7, 1.4))
        hard = wrong and not blind
        margin = rng.choice([1, 1, 2, 3]) if hard else rng.choice([1, 2, 3, 3, 4, 5])
        high = rng.randint(5 + margin, 10) if margin < 5 else 10
        chosen_score, rejected_score = float(high), float(high - margin)
        votes = [_vote(JUDGES[0], order, "chosen", chosen_score, rejected_score) for order in ("ab", "ba")]
        for judge in JUDGES[1:]:
            # a peer forms one opinion of the pair (right with peer_accuracy), then the order it is shown in may flip it
            opinion = (rng.random() < spec.peer_accuracy) != wrong  # True: it prefers the chosen
            for order in ("ab", "ba"):
                says_chosen = True if blind else opinion != (rng.random() < (0.3 if hard else 0.08))
                votes.append(_vote(judge, order, "chosen" if says_chosen else "rejected", chosen_score, rejected_score))
        expected_gap = margin + rng.gauss(0.0, 0.6) - (1.2 if hard else 0.0)
        rows.append({
            "prompt": f"[{domain}] {spec.tag} question {i}: explain item {i}.",
            "chosen": f"chosen {i} " + "x" * max(1, chosen_len),
            "rejected": f"rejected {i} " + "y" * max(1, base_len),
            "domain": domain,
            "source": "synthetic",
            "chosen_score": chosen_score,
            "rejected_score": rejected_score,
            "origin_uri": f"file:///sim/{spec.tag}.parquet",
            "origin_sha256": "0" * 64,
            "origin_row": i,
            "generation": {
                "teacher": "sim-teacher", "judge": JUDGES[0], "strategy": "pairwise", "run_id": f"{spec.tag}-run",
                "judge_votes": votes, "chosen_expected": round(chosen_score - 0.3, 3),
                "rejected_expected": round(chosen_score - 0.3 - expected_gap, 3),
                "finish_reasons": ["stop", "stop"],
            },
        })
        wrong_flags.append(wrong)
    frame = _canonical(rows)
    truth = {rid: ("b" if w else "a") for rid, w in zip(frame.get_column("record_id").to_list(), wrong_flags)}
    return frame, truth


def _canonical(rows: list[dict[str, object]]) -> pl.DataFrame:
    from prefmix.records import POLARS_SCHEMA

    full = [{name: row.get(name) for name in POLARS_SCHEMA} for row in rows]
    return with_record_id(conform(pl.DataFrame(full, schema=POLARS_SCHEMA)))


def gold(n: int, seed: int = 0, domains: tuple[str, ...] = DOMAINS) -> pl.DataFrame:
    """n gold items (prompt, response_a, response_b, domain, gold_answer), as a routing.gold file holds them."""
    rng = random.Random(seed + 7919)
    return pl.DataFrame([
        {"prompt": f"[{domains[i % len(domains)]}] gold question {i}", "response_a": f"gold answer A{i}",
         "response_b": f"gold answer B{i}, a different one", "domain": domains[i % len(domains)],
         "gold_answer": rng.choice(["a", "b"])}
        for i in range(n)
    ])


def votes(queue: "Queue", truth: dict[str, str], error_rates: tuple[float, ...] = (0.05, 0.1, 0.15, 0.1, 0.2),
          seed: int = 0, follows_suggestion: int | None = None) -> pl.DataFrame:
    """Simulated answers to a queue without a labeling tool: k of the annotators per task (seeded), each right
    with 1 - its error rate (truth: record_id -> "a"/"b"; gold items answer to their gold label). The annotator
    at index `follows_suggestion`, if any, picks the shown suggestion whenever there is one. Rows as
    prefmix.routing.state VOTES_SCHEMA (delivery "simulated")."""
    from prefmix.routing.signals import SIGNALS
    from prefmix.routing.state import VOTES_SCHEMA

    rows = []
    for item in queue.items:
        rng = random.Random(f"{seed}\x1f{item.task_id}")
        better = item.gold_label if item.is_gold else truth[item.record_id]
        people = rng.sample(range(len(error_rates)), min(item.annotators, len(error_rates)))
        for who in people:
            if who == follows_suggestion and item.show_suggestion and item.judge_choice is not None:
                label = item.judge_choice
            else:
                label = better if rng.random() >= error_rates[who] else ("a" if better == "b" else "b")
            rows.append({
                "queue_id": queue.queue_id, "task_id": item.task_id, "record_id": item.record_id, "domain": item.domain,
                "vendor": queue.vendor, "annotator_id": f"sim-{who}", "preference": label,
                "suggestion_shown": item.show_suggestion, "shown_order": "ab", "lead_time_s": round(rng.uniform(10, 60), 3),
                "judge_choice": item.judge_choice, "is_gold": item.is_gold, "gold_answer": item.gold_label,
                "route_score": item.route_score, "route_reason": item.route_reason, "price_per_label": item.price_per_label,
                **{name: item.signals.get(name) for name in SIGNALS}, "delivery": "simulated",
            })
    return pl.DataFrame(rows, schema=VOTES_SCHEMA)
