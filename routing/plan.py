"""One queue from candidates: signals -> checks -> route score -> selection -> Queue. Data in, data out.

The queue id is a content hash of what decides the queue (candidate ids, gold ids, the model, the routing
config without its target, the seed): the same inputs give the same queue, with the same id and task ids, and
so the same presentation orders (prefmix.routing.queue.shown_order is a function of the task id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from prefmix.routing.checks import Check, verifiable
from prefmix.routing.queue import Queue, QueueItem
from prefmix.routing.score import RouteModel, score
from prefmix.routing.select import Plan, Selection, select
from prefmix.routing.signals import SIGNALS, signals

from prefmix.config import Routing
from prefmix.hashing import short_hash


@dataclass
class Planned:
    queue: Queue
    scored: pl.DataFrame  # every candidate: signals, check, route score, selected
    selection: Selection
    to_check: pl.DataFrame  # candidates a check can verify: record_id, domain, check
    not_routable: int  # candidates with an empty prompt or response
    model: RouteModel  # the model the scores came from


def selection_plan(routing: Routing, seed: int) -> Plan:
    return Plan(budget=routing.budget, gold_share=routing.gold_share, annotators=routing.annotators,
                hidden_share=routing.anchoring.hidden_share, seed=seed, minimum=routing.minimum,
                price=lambda domain: routing.price(domain))


def queue_id(candidate_ids: list[str], gold_ids: list[str], model: RouteModel, routing: Routing, seed: int) -> str:
    decisive = routing.model_dump(mode="json", exclude={"label_studio", "returned"})
    return "rq-" + short_hash({"candidates": sorted(candidate_ids), "gold": sorted(gold_ids), "model": model.model_dump(mode="json"),
                               "routing": decisive, "seed": seed}, 12)


def _judge(frame: pl.DataFrame) -> str:
    judges = frame.select(pl.col("generation").struct.field("judge").drop_nulls()).to_series()
    if judges.len() == 0:
        return "judge"
    counts = judges.value_counts(sort=True, name="n")
    return str(counts.sort(["n", judges.name], descending=[True, False]).row(0)[0])


def plan_queue(candidates: pl.DataFrame, gold: pl.DataFrame, routing: Routing, model: RouteModel, checks: list[Check],
               seed: int, created_at: datetime | None = None) -> Planned:
    """candidates: canonical synthetic rows (not yet routed); gold: prefmix.routing.candidates GOLD_SCHEMA rows."""
    empty = (pl.col("prompt").str.strip_chars() == "") | (pl.col("chosen").str.strip_chars() == "") | (
        pl.col("rejected").str.strip_chars() == "")
    not_routable = int(candidates.select(empty.sum()).item()) if candidates.height else 0
    candidates = candidates.filter(~empty) if candidates.height else candidates
    sig = signals(candidates, routing.signals).with_columns(verifiable(candidates, checks))
    scored = score(sig, model)
    to_check = scored.filter(pl.col("check").is_not_null()).select("record_id", "domain", "check")
    routable = scored.filter(pl.col("check").is_null())
    selection = select(routable, gold, selection_plan(routing, seed))

    qid = queue_id(routable.get_column("record_id").to_list(), gold.get_column("gold_id").to_list(), model, routing, seed)
    texts = candidates.select("record_id", "prompt", response_a="chosen", response_b="rejected")  # a pair's chosen goes first
    picked = selection.routed.join(texts, on="record_id", how="left", maintain_order="left")

    def item(row: dict[str, Any], record_id: str, tag: str, **kind: Any) -> QueueItem:
        """A task as every task is: its id, texts, domain, price and panel size; `kind` adds what routed or gold has."""
        return QueueItem(task_id=f"{qid}-{tag}{record_id[:20]}", record_id=record_id, prompt=row["prompt"],
                         response_a=row["response_a"], response_b=row["response_b"], domain=row["domain"],
                         price_per_label=float(row["price_per_label"]), annotators=routing.annotators, **kind)

    items = [
        item(row, row["record_id"], "",
             judge_choice="a",  # a synthetic pair's chosen is the judge's pick
             judge_confidence=round(float(row["judge_confidence"]), 6),
             route_score=round(float(row["route_score"]), 6),
             route_reason="domain_minimum" if row["minimum"] else row["route_reason"],
             signals={name: row[name] for name in SIGNALS},
             show_suggestion=bool(row["show_suggestion"]))
        for row in picked.iter_rows(named=True)
    ]
    items += [
        item(row, row["gold_id"], "g", judge_choice=None, route_score=0.0, route_reason="gold", is_gold=True,
             gold_label=row["gold_answer"], show_suggestion=False)
        for row in selection.gold.iter_rows(named=True)
    ]
    queue = Queue(queue_id=qid, items=items, created_at=created_at or datetime.now(UTC), seed=seed,
                  judge=_judge(candidates.filter(pl.col("record_id").is_in(picked.get_column("record_id").to_list()))),
                  vendor=routing.vendor)
    chosen = set(picked.get_column("record_id").to_list())
    scored = scored.with_columns(selected=pl.col("record_id").is_in(list(chosen)))
    return Planned(queue=queue, scored=scored, selection=selection, to_check=to_check, not_routable=not_routable, model=model)


def describe(planned: Planned) -> dict[str, Any]:
    """Counts of a planned queue: per domain tasks, gold, labels and cost; reasons; the checks' share."""
    items = pl.DataFrame(
        [{"domain": i.domain, "gold": i.is_gold, "labels": i.annotators, "cost": i.annotators * i.price_per_label,
          "reason": i.route_reason, "score": i.route_score, "hidden": not i.show_suggestion and not i.is_gold}
         for i in planned.queue.items],
        schema={"domain": pl.String, "gold": pl.Boolean, "labels": pl.Int64, "cost": pl.Float64, "reason": pl.String,
                "score": pl.Float64, "hidden": pl.Boolean},
    )
    per_domain = {
        r["domain"]: {"tasks": r["tasks"], "gold": r["gold"], "labels": r["labels"], "cost": round(r["cost"], 6)}
        for r in items.group_by("domain").agg(tasks=pl.len(), gold=pl.col("gold").sum(), labels=pl.col("labels").sum(),
                                              cost=pl.col("cost").sum()).sort("domain").iter_rows(named=True)
    }
    routed = items.filter(~pl.col("gold"))
    reasons = dict(sorted(routed.group_by("reason").len().iter_rows())) if routed.height else {}
    checks = dict(sorted(planned.to_check.group_by("check").len().iter_rows())) if planned.to_check.height else {}
    return {
        "tasks": items.height,
        "routed": routed.height,
        "gold": items.height - routed.height,
        "hidden": int(items.get_column("hidden").sum()) if items.height else 0,
        "labels": int(items.get_column("labels").sum()) if items.height else 0,
        "cost": round(planned.selection.cost, 6),
        "per_domain": per_domain,
        "reasons": reasons,
        "to_check": checks,
        "expected_errors": round(float(routed.get_column("score").sum()), 6) if routed.height else 0.0,
    }
