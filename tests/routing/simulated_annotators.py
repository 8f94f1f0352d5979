"""Simulated annotators for a real Label Studio server: each one its own user, submitting through the API.

Each annotator asks the server for its next task (GET /api/projects/{id}/next — the labeling stream the
editor uses, so Label Studio's overlap setting decides who gets what), looks only at what a person sees (the
two shown texts and, when present, the pre-labelled suggestion), decides, and posts an annotation as itself
with a lead time (POST /api/tasks/{id}/annotations/). Decisions are seeded per (seed, annotator, prefmix task
id), so they do not depend on the order tasks arrive in.

- honest: picks the truly better response, except with probability `error_rate`;
- `follows_suggestion`: picks whatever the shown suggestion picks; without a suggestion it answers honestly;
- `skip_rate`: presses Skip (cancelled, no result); `cancel_rate`: picks, then cancels (cancelled, with result).

`truth` maps a prefmix task id to the better response in prefmix order ("a" = the pair's chosen). Every
action is logged as an `Act`, in prefmix terms, so a test can check what came back against what was meant.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from prefmix.routing.label_studio import FROM_NAME, LEFT, RIGHT, pairwise_result
from prefmix.routing.queue import Queue

Outcome = Literal["submitted", "skipped", "cancelled"]


@dataclass(frozen=True)
class Persona:
    name: str
    error_rate: float = 0.1
    follows_suggestion: bool = False
    skip_rate: float = 0.0
    cancel_rate: float = 0.0
    lead_time_s: tuple[float, float] = (20.0, 60.0)  # uniform range


def panel(*, steady_error: float, steady_cancel: float, hasty_error: float, hasty_skip: float) -> list[Persona]:
    """The five annotators of the end-to-end tests: careful, steady (cancels some), hasty (skips some), solid, and
    anchored (takes a shown suggestion). A test sets how often steady and hasty err, cancel and skip."""
    return [
        Persona("careful", error_rate=0.05, lead_time_s=(30.0, 90.0)),
        Persona("steady", error_rate=steady_error, cancel_rate=steady_cancel, lead_time_s=(20.0, 60.0)),
        Persona("hasty", error_rate=hasty_error, skip_rate=hasty_skip, lead_time_s=(8.0, 25.0)),
        Persona("solid", error_rate=0.10, lead_time_s=(25.0, 70.0)),
        Persona("anchored", error_rate=0.20, follows_suggestion=True, lead_time_s=(2.0, 6.0)),
    ]


@dataclass(frozen=True)
class Act:
    annotator: str  # persona name
    annotator_id: str  # ls-user-<id>
    task_id: str  # prefmix task id
    ls_task_id: int
    ls_annotation_id: int
    outcome: Outcome
    meant: str | None  # the prefmix-order label the annotator picked (None when skipped)
    shown_side: str | None  # "left" / "right"
    suggestion_seen: bool
    lead_time_s: float


@dataclass
class SimulatedAnnotator:
    persona: Persona
    email: str
    token: str
    user_id: int
    acts: list[Act] = field(default_factory=list)

    @property
    def annotator_id(self) -> str:
        return f"ls-user-{self.user_id}"

    def _rng(self, seed: int, task_id: str) -> random.Random:
        digest = hashlib.sha256(f"{seed}\x1f{self.persona.name}\x1f{task_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def step(self, http: httpx.Client, project_id: int, queue: Queue, truth: dict[str, str], seed: int) -> bool:
        """Take the next task and act on it; False when the server has none left for this annotator."""
        auth = {"Authorization": f"Token {self.token}"}
        response = http.get(f"/api/projects/{project_id}/next", headers=auth)
        if response.status_code == 404:
            return False
        response.raise_for_status()
        task = response.json()
        data = task["data"]
        task_id = str(data["prefmix_task_id"])
        item = next(i for i in queue.items if i.task_id == task_id)
        rng = self._rng(seed, task_id)
        suggestion = _suggested_side(task)
        better = item.response_a if truth[task_id] == "a" else item.response_b
        # what a person sees: two texts; find the better one by its text, not by any recorded order
        better_side = "left" if data[LEFT] == better else "right"
        assert data[LEFT if better_side == "left" else RIGHT] == better
        worse_side = "right" if better_side == "left" else "left"
        if self.persona.follows_suggestion and suggestion is not None:
            side = suggestion
        else:
            side = worse_side if rng.random() < self.persona.error_rate else better_side
        draw = rng.random()
        outcome: Outcome = "submitted"
        if draw < self.persona.skip_rate:
            outcome = "skipped"
        elif draw < self.persona.skip_rate + self.persona.cancel_rate:
            outcome = "cancelled"
        low, high = self.persona.lead_time_s
        lead = round(rng.uniform(low, high), 3)
        body: dict[str, Any] = {"lead_time": lead, "was_cancelled": outcome != "submitted",
                                "result": [] if outcome == "skipped" else [pairwise_result("a" if side == "left" else "b")]}
        posted = http.post(f"/api/tasks/{task['id']}/annotations/", json=body, headers=auth)
        posted.raise_for_status()
        shown_text = data[LEFT] if side == "left" else data[RIGHT]
        meant = None if outcome == "skipped" else ("a" if shown_text == item.response_a else "b")
        self.acts.append(Act(self.persona.name, self.annotator_id, task_id, int(task["id"]), int(posted.json()["id"]), outcome,
                             meant, None if outcome == "skipped" else side, suggestion is not None, lead))
        return True


def sign_up(label_studio: Any, personas: list[Persona]) -> list[SimulatedAnnotator]:
    """A Label Studio user per persona (signed up in order, through the invite link), each annotating as itself."""
    annotators = []
    for persona in personas:
        account = label_studio.create_annotator(persona.name)
        annotators.append(SimulatedAnnotator(persona, account.email, account.token, account.user_id))
    return annotators


def _suggested_side(task: dict[str, Any]) -> str | None:
    """The side the pre-labelled suggestion (a prediction on the task) selects, as the editor would show it."""
    for prediction in task.get("predictions") or []:
        for region in prediction.get("result") or []:
            if region.get("from_name") == FROM_NAME and region.get("type") == "pairwise":
                return (region.get("value") or {}).get("selected")
    return None


def run_annotators(url: str, project_id: int, annotators: list[SimulatedAnnotator], queue: Queue, truth: dict[str, str],
                   *, seed: int = 0, max_steps: int = 10_000) -> list[Act]:
    """Round-robin: each annotator takes one task per turn until the server has none left for anyone."""
    active = list(annotators)
    steps = 0
    with httpx.Client(base_url=url, timeout=60.0, trust_env=False) as http:
        while active and steps < max_steps:
            for annotator in list(active):
                steps += 1
                if not annotator.step(http, project_id, queue, truth, seed):
                    active.remove(annotator)
    if active:
        raise RuntimeError(f"annotators still active after {max_steps} steps")
    return [act for annotator in annotators for act in annotator.acts]
