"""Where routing keeps its state in the store, and the only code that reads or writes it.

    routing/queues/<queue_id>/queue.json      the queue as sent (private fields included: gold answers, judge)
    routing/queues/<queue_id>/plan.json       the plan: budget, counts, model, candidates' digest
    routing/queues/<queue_id>/scored.parquet  every candidate's signals and route score (reports, audits)
    routing/queues/<queue_id>/sent.json       where it went: the Label Studio project, the files
    routing/queues/<queue_id>/delivered.json  the tasks already delivered to the landing zone, per delivery
    routing/votes.parquet                     every delivered vote with its task's signals (what learning reads)
    routing/agreement.json                    per-domain and per-signal agreement and the fitted model
    routing/returned/                         default landing zone of returned judgments shards
    routing/report/                           the latest report (markdown, route score picture)
    routing/.lock                             held while routing writes (not the store's lock: a nightly may run)

Every file is written atomically (temp file + rename), so a killed run leaves the old state or the new one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from prefmix.routing.learn import AgreementState
from prefmix.routing.queue import Queue
from prefmix.routing.signals import SIGNALS
from pydantic import BaseModel, ConfigDict, Field

from prefmix import locks
from prefmix.errors import InputError, StoreLocked
from prefmix.store import (
    Store,
    Under,
    atomic_write_json,
    atomic_write_text,
    sha256_file,
    write_parquet,
)

VOTES_SCHEMA: dict[str, pl.DataType] = {
    "queue_id": pl.String(),
    "task_id": pl.String(),
    "record_id": pl.String(),
    "domain": pl.String(),
    "vendor": pl.String(),
    "annotator_id": pl.String(),
    "preference": pl.String(),
    "suggestion_shown": pl.Boolean(),
    "shown_order": pl.String(),
    "lead_time_s": pl.Float64(),
    "judge_choice": pl.String(),
    "is_gold": pl.Boolean(),
    "gold_answer": pl.String(),
    "route_score": pl.Float64(),
    "route_reason": pl.String(),
    "price_per_label": pl.Float64(),
    **{name: pl.Float64() for name in SIGNALS},
    "delivery": pl.String(),
}


class Sent(BaseModel):
    """Where a queue went."""

    model_config = ConfigDict(extra="forbid")

    label_studio_url: str | None = None
    project_id: int | None = None
    project_title: str | None = None
    keep_private: bool = False
    files: str | None = None
    at: str


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    sha256: str | None = None  # None: recorded, not yet written (the next pull writes it)
    tasks: int
    labels: int
    at: str


class Delivered(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(default_factory=list)
    deliveries: list[Delivery] = Field(default_factory=list)


@dataclass(frozen=True)
class RoutingStore:
    store: Store

    @property
    def root(self) -> Path:
        return self.store.root / "routing"

    votes_path = Under("votes.parquet")
    agreement_path = Under("agreement.json")
    report_dir = Under("report")

    def queue_dir(self, queue_id: str) -> Path:
        return self.root / "queues" / queue_id

    def returned_dir(self, configured: str | None) -> Path:
        return Path(configured) if configured else self.root / "returned"

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        taken = lambda holder: StoreLocked(f"{self.root}: routing is busy ({holder}); wait for it to finish")  # noqa: E731
        with locks.exclusive(self.root / ".lock", what, taken):
            yield

    # queues ----------------------------------------------------------------------------------------
    def queue_ids(self) -> list[str]:
        base = self.root / "queues"
        return sorted(p.name for p in base.iterdir() if (p / "queue.json").is_file()) if base.is_dir() else []

    def load_queue(self, queue_id: str) -> Queue:
        path = self.queue_dir(queue_id) / "queue.json"
        if not path.is_file():
            known = ", ".join(self.queue_ids()) or "none"
            raise InputError(f"queue {queue_id!r}: not in {self.root / 'queues'} (known: {known})")
        return Queue.model_validate_json(path.read_text(encoding="utf-8"))

    def save_queue(self, queue: Queue, plan: dict[str, Any], scored: pl.DataFrame, sent: Sent) -> Path:
        folder = self.queue_dir(queue.queue_id)
        write_parquet(scored.to_arrow(), folder / "scored.parquet")
        atomic_write_json(folder / "plan.json", plan)
        atomic_write_text(folder / "sent.json", sent.model_dump_json(indent=2) + "\n")
        # queue.json last: a queue counts as sent (its records excluded from the next) only once it is whole
        atomic_write_text(folder / "queue.json", queue.model_dump_json(indent=1) + "\n")
        return folder

    def sent(self, queue_id: str) -> Sent:
        return Sent.model_validate_json((self.queue_dir(queue_id) / "sent.json").read_text(encoding="utf-8"))

    def routed_record_ids(self) -> set[str]:
        """Record ids every earlier queue sent (they are not sent again)."""
        ids: set[str] = set()
        for queue_id in self.queue_ids():
            data = json.loads((self.queue_dir(queue_id) / "queue.json").read_text(encoding="utf-8"))
            ids.update(item["record_id"] for item in data["items"] if not item.get("is_gold"))
        return ids

    def delivered(self, queue_id: str) -> Delivered:
        path = self.queue_dir(queue_id) / "delivered.json"
        return Delivered.model_validate_json(path.read_text(encoding="utf-8")) if path.is_file() else Delivered()

    def save_delivered(self, queue_id: str, delivered: Delivered) -> None:
        atomic_write_text(self.queue_dir(queue_id) / "delivered.json", delivered.model_dump_json(indent=1) + "\n")

    # learning ----------------------------------------------------------------------------------------
    def votes(self) -> pl.DataFrame:
        if not self.votes_path.is_file():
            return pl.DataFrame(schema=VOTES_SCHEMA)
        return pl.read_parquet(self.votes_path).select(list(VOTES_SCHEMA))

    def save_votes(self, votes: pl.DataFrame) -> str:
        write_parquet(votes.select(list(VOTES_SCHEMA)).sort("queue_id", "task_id", "annotator_id").to_arrow(), self.votes_path)
        return sha256_file(self.votes_path)

    def agreement(self) -> AgreementState | None:
        if not self.agreement_path.is_file():
            return None
        return AgreementState.model_validate_json(self.agreement_path.read_text(encoding="utf-8"))

    def save_agreement(self, state: AgreementState) -> Path:
        return atomic_write_json(self.agreement_path, state.model_dump(mode="json"))

    def votes_sha256(self) -> str | None:
        return sha256_file(self.votes_path) if self.votes_path.is_file() else None
