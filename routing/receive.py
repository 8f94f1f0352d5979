"""Answers back: which returned tasks are delivered now, and the votes routing learns from.

A task is delivered once, when it is complete (its k submitted answers are in; Label Studio requeues skips and
cancels to other people), or at once with `partial` (whatever answers it has; the rest never follow). Each
pull writes the newly delivered tasks' rows as one judgments shard into the landing zone, so every file is a
delivery the nightly takes exactly once, and no row is in two files.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
from prefmix.routing.label_studio import Returned
from prefmix.routing.queue import Queue
from prefmix.routing.signals import SIGNALS
from prefmix.routing.state import VOTES_SCHEMA


def ready(returned: Returned, queue: Queue, already: list[str], partial: bool = False) -> list[str]:
    """Task ids of `queue` to deliver now (complete, or answered with `partial`), not delivered before, in queue order."""
    answered = dict(returned.frame.group_by("task_id").len().iter_rows()) if returned.frame.height else {}
    done = set(already)
    return [
        item.task_id for item in queue.items
        if item.task_id not in done and answered.get(item.task_id, 0) >= (1 if partial else item.annotators)
    ]


def only(returned: Returned, task_ids: list[str]) -> Returned:
    """The returned rows and outcomes of these tasks (counts stay those of the whole pull)."""
    keep = pl.col("task_id").is_in(task_ids)
    return replace(returned, frame=returned.frame.filter(keep), outcomes=returned.outcomes.filter(keep),
                   extra={**returned.extra, "delivered_tasks": len(task_ids)})


def votes(returned: Returned, queue: Queue, delivery: str) -> pl.DataFrame:
    """One row per returned vote (VOTES_SCHEMA), with the task's signals, price and vendor from the queue."""
    items = pl.DataFrame(
        [{"task_id": i.task_id, "price_per_label": i.price_per_label, **{n: i.signals.get(n) for n in SIGNALS}} for i in queue.items],
        schema={"task_id": pl.String, "price_per_label": pl.Float64, **{n: pl.Float64 for n in SIGNALS}},
    )
    frame = returned.frame.join(items, on="task_id", how="left")
    return frame.with_columns(vendor=pl.lit(queue.vendor), delivery=pl.lit(delivery)).select(
        [pl.col(name).cast(dtype) for name, dtype in VOTES_SCHEMA.items()]
    )


def merge(previous: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """All votes: the earlier ones, less any of the same (queue, task) delivered again, plus the new ones."""
    key = ["queue_id", "task_id"]
    kept = previous.join(new.select(key).unique(), on=key, how="anti") if new.height else previous
    return pl.concat([kept, new]) if new.height else kept
