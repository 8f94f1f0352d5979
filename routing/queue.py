"""The labeling queue: what routing hands to a labeling tool (Label Studio, Argilla files).

The routing logic (signals, route score, budget) builds a `Queue`; `prefmix.routing.label_studio`
consumes it. Responses are in prefmix's order: `response_a` is the pair's chosen, `response_b`
its rejected; the order a person sees is decided (and recorded) by the tool side, per task id.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Choice = Literal["a", "b"]
Label = Literal["a", "b", "tie"]
Order = Literal["ab", "ba"]  # "ab": response_a shown first (left / Response A); "ba": response_b shown first


class QueueItem(BaseModel):
    """One pair sent to people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(min_length=1, description="prefmix's id of this labeling task (unique within the queue)")
    record_id: str = Field(min_length=1, description="the synthetic record the pair came from")
    prompt: str = Field(min_length=1)
    response_a: str = Field(min_length=1, description="the pair's chosen (prefmix order)")
    response_b: str = Field(min_length=1, description="the pair's rejected (prefmix order)")
    domain: str = Field(min_length=1)
    judge_choice: Choice | None = Field(description="the judge's pick, in prefmix order (None: a gold item with no judge)")
    judge_confidence: float | None = Field(None, ge=0.0, le=1.0)
    route_score: float
    route_reason: str = Field(description="the signal that weighed most in the route score")
    signals: dict[str, float | None] = Field(default_factory=dict, description="the doubt signals at queue time (learning)")
    price_per_label: float = Field(0.0, ge=0.0, description="what one label of this task costs (spend reports)")
    is_gold: bool = False
    gold_label: Label | None = Field(None, description="the known answer of a gold item, in prefmix order")
    show_suggestion: bool = Field(True, description="False: sent without the judge's suggestion (anchoring check)")
    annotators: int = Field(1, ge=1, description="k: how many distinct people label this task")

    @model_validator(mode="after")
    def _gold_has_answer(self) -> QueueItem:
        if self.is_gold and self.gold_label is None:
            raise ValueError(f"task {self.task_id}: a gold item needs gold_label")
        if self.judge_choice is None and not self.is_gold:
            raise ValueError(f"task {self.task_id}: a routed item needs the judge's choice")
        if self.show_suggestion and (self.judge_choice is None or self.judge_confidence is None):
            raise ValueError(f"task {self.task_id}: a shown suggestion needs judge_choice and judge_confidence")
        return self


class Queue(BaseModel):
    """A batch of tasks for one labeling project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_id: str = Field(min_length=1)
    items: list[QueueItem]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    seed: int = 0
    judge: str = Field("judge", min_length=1, description="the judge whose choices are the suggestions (model_version / agent)")
    vendor: str = Field("label-studio", min_length=1, description="who labels this queue (prices, spend reports)")

    @model_validator(mode="after")
    def _unique_task_ids(self) -> Queue:
        seen: set[str] = set()
        for item in self.items:
            if item.task_id in seen:
                raise ValueError(f"queue {self.queue_id}: task id {item.task_id!r} appears twice")
            seen.add(item.task_id)
        return self

    @property
    def max_annotators(self) -> int:
        return max((item.annotators for item in self.items), default=1)


def shown_order(task_id: str) -> Order:
    """The presentation order of a task, a pure function of its prefmix task id (reproducible, ~50/50)."""
    return "ba" if hashlib.sha256(f"prefmix-order\x1f{task_id}".encode()).digest()[0] & 1 else "ab"


def to_shown(label: Label, order: Order) -> Label:
    """A prefmix-order label as the position it is shown in: "a" = first shown, "b" = second."""
    if label == "tie" or order == "ab":
        return label
    return "b" if label == "a" else "a"


def from_shown(position: Label, order: Order) -> Label:
    """A shown position ("a" first, "b" second, or "tie") back in prefmix order; the swap is its own inverse."""
    return to_shown(position, order)
