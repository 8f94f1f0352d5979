"""Selection under a budget: the budget, the per-domain minimum, the gold share, k and the hidden share are met
exactly; the same seed gives the same queue; impossible budgets are one-line errors."""

from __future__ import annotations

import math
from collections import Counter

import polars as pl
import pytest
from prefmix.routing import learn
from prefmix.routing.plan import plan_queue
from prefmix.routing.select import half_up

from prefmix.config import Routing, parse
from prefmix.errors import ConfigError, InputError
from tests.routing.pairs import DOMAINS, gold_frame, random_pool

POOL = random_pool(400, seed=5)
GOLD = gold_frame(60)


def routing(**section: object) -> Routing:
    base = {"budget": {"tasks": 50}, "min_per_domain": 5, "gold_share": 0.1, "annotators": 3,
            "anchoring": {"hidden_share": 0.3}}
    return parse({"routing": {**base, **section}}).routing


def plan(r: Routing, pool: pl.DataFrame = POOL, gold: pl.DataFrame = GOLD, seed: int = 7):  # noqa: ANN201
    return plan_queue(pool, gold, r, learn.fit(pl.DataFrame(), r), [], seed)


@pytest.mark.parametrize("tasks,gold_share,minimum,k,hidden", [(50, 0.1, 5, 3, 0.3), (37, 0.2, 3, 1, 0.5), (120, 0.0, 20, 5, 0.0),
                                                              (8, 0.25, 1, 2, 1.0)])
def test_count_budget_minimum_gold_overlap_and_hidden_are_exact(tasks: int, gold_share: float, minimum: int, k: int,
                                                                hidden: float) -> None:
    r = routing(budget={"tasks": tasks}, gold_share=gold_share, min_per_domain=minimum, annotators=k,
                anchoring={"hidden_share": hidden})
    queue = plan(r).queue
    gold = [i for i in queue.items if i.is_gold]
    routed = [i for i in queue.items if not i.is_gold]
    assert len(queue.items) == tasks
    assert len(gold) == half_up(gold_share * tasks)
    per_domain = Counter(i.domain for i in routed)
    assert all(per_domain[d] >= minimum for d in DOMAINS)
    assert sum(1 for i in routed if i.route_reason == "domain_minimum") == minimum * len(DOMAINS)
    assert {i.annotators for i in queue.items} == {k} and queue.max_annotators == k
    assert sum(1 for i in routed if not i.show_suggestion) == half_up(hidden * len(routed))
    assert not any(i.show_suggestion for i in gold) and all(i.gold_label in ("a", "b") for i in gold)
    assert len({i.record_id for i in routed}) == len(routed)


def test_routed_beyond_the_minimum_are_the_highest_scores() -> None:
    planned = plan(routing())
    scored = planned.scored.filter(pl.col("check").is_null())
    picked = [i for i in planned.queue.items if not i.is_gold and i.route_reason != "domain_minimum"]
    minimum = {i.record_id for i in planned.queue.items if i.route_reason == "domain_minimum"}
    lowest_picked = min(i.route_score for i in picked)
    left = scored.filter(~pl.col("record_id").is_in([i.record_id for i in planned.queue.items]))
    assert left.get_column("route_score").max() <= lowest_picked + 1e-6
    assert minimum and not minimum & {i.record_id for i in picked}


def test_share_budget_is_a_share_of_the_candidates() -> None:
    queue = plan(routing(budget={"share": 0.125})).queue
    assert len(queue.items) == half_up(0.125 * POOL.height) == 50


def test_money_budget_spends_at_most_the_money_and_one_more_task_would_not_fit() -> None:
    prices = {"label-studio": {"*": 0.4, "law": 1.1, "medicine": 0.75}}
    for money in (21.0, 33.3, 57.0):
        r = routing(budget={"money": money}, prices=prices, min_per_domain=2)
        planned = plan(r)
        queue = planned.queue
        cost = sum(i.annotators * i.price_per_label for i in queue.items)
        assert cost <= money + 1e-9 and math.isclose(cost, planned.selection.cost)
        # the next larger queue in the same order (one more task: maybe a gold one) would cost more than the money
        bigger = plan(routing(budget={"tasks": len(queue.items) + 1}, prices=prices, min_per_domain=2))
        assert sum(i.annotators * i.price_per_label for i in bigger.queue.items) > money
        assert sum(1 for i in queue.items if i.is_gold) == half_up(0.1 * len(queue.items))


def test_same_inputs_same_queue_another_seed_another_queue() -> None:
    r = routing()
    a, b = plan(r).queue, plan(r).queue
    assert a.queue_id == b.queue_id and [i.model_dump() for i in a.items] == [i.model_dump() for i in b.items]
    shuffled = plan(r, pool=POOL.sample(fraction=1.0, shuffle=True, seed=3)).queue  # input order does not matter
    assert {i.task_id for i in shuffled.items} == {i.task_id for i in a.items}
    other = plan(r, seed=8).queue
    assert other.queue_id != a.queue_id
    assert {i.record_id for i in other.items} != {i.record_id for i in a.items}  # gold, minimum and hidden are redrawn


def test_fewer_candidates_than_the_budget_sends_what_there_is() -> None:
    planned = plan(routing(budget={"tasks": 500}, min_per_domain=0, gold_share=0.1), pool=POOL.head(40))
    routed = [i for i in planned.queue.items if not i.is_gold]
    assert len(routed) == 40 and planned.selection.short_of_candidates == 500 - len(planned.queue.items)
    short = plan(routing(budget={"tasks": 200}, min_per_domain=30), pool=POOL.head(100))  # 25 per domain
    assert short.selection.shortfall == {d: 5 for d in DOMAINS}


def test_impossible_budgets_are_one_line_errors() -> None:
    with pytest.raises(InputError, match="fewer than the per-domain minimums"):
        plan(routing(budget={"tasks": 20}, min_per_domain=5))
    with pytest.raises(InputError, match="gold pool has 2"):
        plan(routing(budget={"tasks": 50}, gold_share=0.5), gold=GOLD.head(2))
    with pytest.raises(InputError, match="no gold items"):
        plan(routing(), gold=GOLD.head(0))
    with pytest.raises(ConfigError, match="no price per label for domain 'finance'"):
        plan(routing(budget={"money": 10}, prices={"label-studio": {"general": 1, "law": 1, "medicine": 1}}))
    with pytest.raises(Exception, match="needs exactly one of"):
        routing(budget={"tasks": 3, "money": 4})


def test_money_too_small_for_the_minimums_is_an_error() -> None:
    r = routing(budget={"money": 10.0}, prices={"label-studio": {"*": 0.4, "law": 1.1, "medicine": 0.75}}, min_per_domain=2)
    with pytest.raises(InputError, match="per-domain minimums"):
        plan(r)
