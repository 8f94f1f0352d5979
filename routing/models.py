"""The route flow's answers (only routing and flows read them, so they live here, not in prefmix.contract)."""

from __future__ import annotations

from typing import Literal

from prefmix.routing.anchoring import AnchoringReport
from prefmix.routing.report import Yield
from prefmix.routing.score import RouteModel
from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainPlan(Model):
    tasks: int
    gold: int
    labels: int
    cost: float


class Pushed(Model):
    url: str
    project_id: int
    project_title: str
    created_project: bool
    imported: int
    already_there: int


class RouteSummary(Model):
    """`prefmix route`: the queue planned (and sent, unless dry_run)."""

    action: Literal["queue"] = "queue"
    queue_id: str
    dry_run: bool
    vendor: str
    budget: dict[str, float | int | None]
    candidates: int = Field(description="synthetic pairs read, before exclusions")
    already_routed: int
    not_routable: int
    to_check: dict[str, int] = Field(default_factory=dict, description="check name -> pairs sent to the check instead")
    scored: int
    tasks: int
    routed: int
    gold: int
    hidden: int
    annotators: int
    labels: int
    cost: float
    requested_tasks: int
    short_of_candidates: int
    minimum_shortfall: dict[str, int] = Field(default_factory=dict)
    per_domain: dict[str, DomainPlan]
    reasons: dict[str, int]
    expected_errors: float = Field(description="sum of the routed tasks' route scores: judge errors the queue should find")
    model: RouteModel
    pushed: Pushed | None = None
    files: str | None = None
    queue_dir: str | None = None
    store: str


class QueuePull(Model):
    queue_id: str
    source: str
    counts: dict[str, int]
    delivered_tasks: int
    delivered_labels: int
    waiting_tasks: int
    shard: str | None = None


class PullSummary(Model):
    """`prefmix route pull`: what came back, what was delivered, what routing learned."""

    action: Literal["pull"] = "pull"
    queues: list[QueuePull]
    returned_dir: str
    landing_zone_listed: bool = Field(description="human.shards of this config lists the returned folder")
    delivered_tasks: int
    delivered_labels: int
    outcome: Yield
    anchoring: AnchoringReport
    agreement: dict[str, float | None] = Field(description="domain -> judge-vs-human agreement from returned labels")
    model: RouteModel
    report: str
    picture: str
    store: str
