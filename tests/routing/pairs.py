"""Synthetic candidate pairs for the routing tests, built through the canonical-record factory with judge votes
filled in (the generation engineer's judge_votes columns: several judges, both orders)."""

from __future__ import annotations

import random
from typing import Any

import polars as pl

from tests.support.records import canonical

DOMAINS = ["general", "finance", "medicine", "law"]


def votes(winners: dict[str, tuple[str | None, str | None]], chosen: float = 8.0, rejected: float = 4.0) -> list[dict[str, Any]]:
    """judge -> (winner in order ab, winner in order ba) as judge_votes rows (None: the judge gave no verdict)."""
    return [
        {"judge": judge, "order": order, "chosen_score": chosen, "rejected_score": rejected, "winner": winner}
        for judge, (ab, ba) in winners.items()
        for order, winner in (("ab", ab), ("ba", ba))
    ]


def pair(i: int, domain: str = "general", *, winners: dict[str, tuple[str | None, str | None]] | None = None,
         chosen_score: float | None = 8.0, rejected_score: float | None = 4.0, expected: tuple[float, float] | None = None,
         chosen: str | None = None, rejected: str | None = None, finish: list[str] | None = None,
         prompt: str | None = None, judge: str = "judge-a") -> dict[str, Any]:
    generation = {
        "teacher": "t", "judge": judge, "strategy": "pairwise",
        "judge_votes": votes(winners, chosen_score or 0.0, rejected_score or 0.0) if winners is not None else None,
        "chosen_expected": expected[0] if expected else None,
        "rejected_expected": expected[1] if expected else None,
        "finish_reasons": finish,
    }
    return {
        "prompt": prompt or f"[{domain}] question {i}: explain topic {i}.",
        "chosen": chosen or f"chosen answer {i} for {domain}",
        "rejected": rejected or f"rejected answer {i} for {domain}",
        "domain": domain, "source": "synthetic", "chosen_score": chosen_score, "rejected_score": rejected_score,
        "origin_uri": "file:///pool/synthetic/run.parquet", "origin_sha256": "0" * 64, "origin_row": i,
        "generation": generation,
    }


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return canonical(rows)


def random_pool(n: int, seed: int = 0, domains: list[str] = DOMAINS) -> pl.DataFrame:
    """n seeded pairs with three judges' votes in both orders, random margins, lengths and finish reasons."""
    rng = random.Random(seed)
    outcomes = ["chosen", "chosen", "chosen", "rejected", "tie", None]
    rows = []
    for i in range(n):
        winners = {j: (rng.choice(outcomes), rng.choice(outcomes)) for j in ("judge-a", "judge-b", "judge-c")}
        high = float(rng.randint(5, 10))
        rows.append(pair(i, domains[i % len(domains)], winners=winners, chosen_score=high,
                         rejected_score=high - rng.randint(0, 5), expected=(high - 0.2, high - rng.uniform(-1, 5)),
                         chosen="c" * rng.randint(5, 200) + f" {i}", rejected="r" * rng.randint(5, 200) + f" {i}",
                         finish=[rng.choice(["stop", "length"]), "stop"]))
    return frame(rows)


def gold_frame(n: int, domains: list[str] = DOMAINS) -> pl.DataFrame:
    from prefmix.records import record_id
    from prefmix.routing.candidates import GOLD_SCHEMA

    rows = [{"prompt": f"gold {i}", "response_a": f"gold A {i}", "response_b": f"gold B {i}", "domain": domains[i % len(domains)],
             "gold_answer": "a" if i % 3 else "b", "gold_source": "test"} for i in range(n)]
    out = pl.DataFrame(rows)
    ids = [record_id(p, a, b) for p, a, b in zip(out["prompt"], out["response_a"], out["response_b"])]
    return out.with_columns(gold_id=pl.Series(ids)).select(list(GOLD_SCHEMA))
