"""Selection under a budget: which scored candidates and which gold items make one queue.

A queue of N tasks holds G = round(gold_share * N) gold items and R = N - G routed pairs (round: half up).
- N: `tasks`; or round(share * candidates); or, for `money`, the largest N whose labels cost at most the
  money (each task costs annotators * price per label of its domain), in the order below.
- Routed order: first each domain's `min_per_domain` pairs, a seeded random sample of the domain (a domain with
  fewer candidates gives all it has; the shortfall is reported): they measure the domain's agreement on
  typical pairs, so learning can see a blind spot no signal shows. Then the rest by route score, or by route
  score per unit of cost under a money budget (expected judge errors found per unit spent). Equal keys are
  ordered by a seeded hash of the record id, so the same inputs and seed give the same queue and another seed
  breaks ties anew.
- Gold: G items of the gold pool in seeded-hash order.
- Anchoring: H = round(hidden_share * R) routed tasks (the lowest seeded hashes) go out without the judge's
  suggestion; gold items never carry one.
A budget that cannot hold the per-domain minimums, or a gold share the gold pool cannot fill, is a UserError.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from prefmix.config import RouteBudget
from prefmix.errors import ConfigError, InputError


def half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def seeded_hash(seed: int, salt: str, ids: list[str]) -> pl.Series:
    """A stable 63-bit number per id (sha256 of seed, salt, id), independent of Polars versions."""
    values = [int.from_bytes(hashlib.sha256(f"{seed}\x1f{salt}\x1f{i}".encode()).digest()[:8], "big") >> 1 for i in ids]
    return pl.Series("hash", values, dtype=pl.Int64)


@dataclass(frozen=True)
class Plan:
    budget: RouteBudget
    gold_share: float
    annotators: int
    hidden_share: float
    seed: int
    minimum: Callable[[str], int]
    price: Callable[[str], float | None]  # price per label for a domain (None: not priced)


@dataclass
class Selection:
    routed: pl.DataFrame  # candidate rows in queue order, with task cost and show_suggestion
    gold: pl.DataFrame  # gold rows in queue order, with task cost
    requested: int  # N the budget asked for (before a shortfall of candidates)
    cost: float
    shortfall: dict[str, int] = field(default_factory=dict)  # domain -> minimum not met for want of candidates
    short_of_candidates: int = 0  # tasks the budget allowed that there were no candidates for

    @property
    def tasks(self) -> int:
        return self.routed.height + self.gold.height


def _costs(frame: pl.DataFrame, plan: Plan, what: str, need_price: bool) -> pl.DataFrame:
    domains = frame.get_column("domain").unique().to_list() if frame.height else []
    prices = {d: plan.price(d) for d in domains}
    missing = sorted(d for d, p in prices.items() if p is None)
    if need_price and missing:
        raise ConfigError(f"routing.prices: no price per label for domain {missing[0]!r} ({what}); a money budget needs one")
    per_label = {d: (p if p is not None else 0.0) for d, p in prices.items()}
    return frame.with_columns(
        price_per_label=pl.col("domain").replace_strict(per_label, return_dtype=pl.Float64, default=0.0),
    ).with_columns(task_cost=pl.col("price_per_label") * plan.annotators)


def _order_routed(scored: pl.DataFrame, plan: Plan, by_cost: bool) -> tuple[pl.DataFrame, dict[str, int], int]:
    """Candidates in queue order (minimums first), the per-domain shortfall and how many minimum slots there are."""
    ids = scored.get_column("record_id").to_list()
    frame = scored.with_columns(seeded_hash(plan.seed, "tie", ids).alias("_tie"), seeded_hash(plan.seed, "explore", ids).alias("_explore"))
    # the minimum is a seeded random sample of the domain: its agreement measured on typical pairs, not only on the
    # most doubtful ones (what learning needs to tell a domain's blind spot from the signals that picked the rest)
    frame = frame.with_columns(_rank=pl.col("_explore").rank("ordinal").over("domain") - 1)
    counts = dict(frame.group_by("domain").len().iter_rows()) if frame.height else {}
    wanted = {d: plan.minimum(d) for d in counts}
    shortfall = {d: m - counts[d] for d, m in wanted.items() if m > counts[d]}
    frame = frame.with_columns(
        _must=pl.col("_rank") < pl.col("domain").replace_strict(wanted, return_dtype=pl.Int64, default=0)
    )
    key = pl.col("route_score") / pl.col("task_cost") if by_cost else pl.col("route_score")
    # free labels (cost 0) under a money budget come first among equals: an infinite key
    key = pl.when(pl.col("task_cost") > 0).then(key).otherwise(float("inf")) if by_cost else key
    frame = frame.with_columns(_key=key).sort(["_must", "_key", "_tie"], descending=[True, True, False])
    return frame, shortfall, int(frame.get_column("_must").sum())


def _gold_count(n: np.ndarray | int, share: float) -> np.ndarray:
    return np.floor(np.asarray(n) * share + 0.5 + 1e-9).astype(np.int64)


def _tasks_for_money(routed: pl.DataFrame, gold: pl.DataFrame, plan: Plan) -> int:
    money = float(plan.budget.money or 0.0)
    cum_r = np.concatenate([[0.0], np.cumsum(routed.get_column("task_cost").to_numpy())])
    cum_g = np.concatenate([[0.0], np.cumsum(gold.get_column("task_cost").to_numpy())])
    n = np.arange(routed.height + gold.height + 1)
    g = _gold_count(n, plan.gold_share)
    r = n - g
    ok = (g < cum_g.size) & (r < cum_r.size)
    cost = np.where(ok, cum_r[np.minimum(r, cum_r.size - 1)] + cum_g[np.minimum(g, cum_g.size - 1)], np.inf)
    fits = np.nonzero(ok & (cost <= money + 1e-9))[0]
    return int(fits.max()) if fits.size else 0


def select(scored: pl.DataFrame, gold_pool: pl.DataFrame, plan: Plan) -> Selection:
    """scored: record_id, domain, route_score (+ anything, kept); gold_pool: gold_id, domain (+ anything)."""
    by_money = plan.budget.money is not None
    routed = _costs(scored, plan, "candidates", need_price=by_money)
    gold = _costs(gold_pool, plan, "gold items", need_price=by_money and plan.gold_share > 0)
    gold = gold.with_columns(seeded_hash(plan.seed, "gold", gold.get_column("gold_id").to_list()).alias("_tie")).sort("_tie")
    routed, shortfall, must = _order_routed(routed, plan, by_cost=by_money)

    if plan.budget.tasks is not None:
        requested = plan.budget.tasks
    elif plan.budget.share is not None:
        requested = half_up(plan.budget.share * routed.height)
    else:
        requested = _tasks_for_money(routed, gold, plan)
    if plan.gold_share > 0 and requested > 0 and gold.height == 0:
        raise InputError("routing.gold_share: no gold items to draw from (gold in human.shards, or routing.gold files)")

    # fewer candidates than the budget allows: the largest N whose routed part the candidates can fill
    n = requested
    while n > 0 and n - int(_gold_count(n, plan.gold_share)) > routed.height:
        n -= 1
    g = int(_gold_count(n, plan.gold_share))
    if g > gold.height:
        raise InputError(f"routing.gold_share {plan.gold_share:g} of {n} tasks needs {g} gold items; the gold pool has {gold.height}")
    r = n - g
    if r < must:
        raise InputError(f"budget: {n} tasks ({g} gold) leave {r} for routed pairs, fewer than the per-domain minimums ({must})")

    picked = routed.head(r)
    hide = half_up(plan.hidden_share * r)
    hidden = set(
        picked.select("record_id", seeded_hash(plan.seed, "hide", picked.get_column("record_id").to_list()).alias("_h"))
        .sort("_h").head(hide).get_column("record_id").to_list()
    )
    picked = picked.with_columns(show_suggestion=~pl.col("record_id").is_in(list(hidden)), minimum=pl.col("_must")).drop(
        "_tie", "_explore", "_rank", "_must", "_key")
    chosen_gold = gold.head(g).drop("_tie")
    cost = float(picked.get_column("task_cost").sum() + chosen_gold.get_column("task_cost").sum())
    return Selection(routed=picked, gold=chosen_gold, requested=requested, cost=cost, shortfall=shortfall,
                     short_of_candidates=requested - n)
