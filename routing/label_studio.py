"""Queues out to Label Studio and back; the same queue as files (Label Studio tasks JSON, an Argilla v2 dataset).

Out (`push`, `write_label_studio_tasks`): one task per queue item. The task's `data` holds what the person
sees — the prompt and both responses in the order they are shown (`response_left` is "Response A") — plus the
prefmix task id and `suggestion_shown`. The order is a pure function of the prefmix task id
(`prefmix.routing.queue.shown_order`), so a re-push or a file gives the same order. Everything the person must
not see (which response prefmix calls chosen, the judge's choice on tasks sent without it, gold answers, route
score) is in the task's `meta["prefmix"]`, which Label Studio keeps, exports and returns from its API but does
not render. Where the suggestion is shown, the judge's choice is a prediction (`model_version` = the judge,
`score` = its confidence) and the project pre-labels with it. Overlap: `maximum_annotations` = k with
`overlap_cohort_percentage` = 100 (every task gets k); items with a smaller k get their task's `overlap` set.

Back (`pull`, `read_export`): every annotation of every prefmix task is one outcome — `submitted`, `skipped`
(cancelled with no choice: the Skip button), `cancelled` (cancelled after a choice), or `no_choice` (submitted
without a choice). Label Studio has one flag, `was_cancelled`, for skip and cancel; the result tells them apart.
Submitted choices are un-swapped into prefmix's order and become rows of a judgments shard
(prefmix.annotations.readers LAYOUTS["judgments"]) plus extra columns the reader passes through:
task_id, queue_id, record_id, shown_order, suggestion_shown, lead_time_s, judge_choice, judge_confidence,
route_score, route_reason, annotated_at, ls_task_id, ls_annotation_id. The server path reads tasks through the
SDK's task list; the export path reads Label Studio's JSON export; both end in the same function.

label-studio-sdk (and argilla) are imported lazily: importing this module needs neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from prefmix.routing.queue import Label, Order, Queue, QueueItem, from_shown, shown_order, to_shown

VENDOR = "label-studio"
FROM_NAME = "preference"  # the Pairwise control
LEFT, RIGHT = "response_left", "response_right"  # shown first ("Response A") and second ("Response B")
META_KEY = "prefmix"
PARQUET_META_KEY = b"prefmix.label_studio"

LABEL_CONFIG = f"""<View>
  <Style>
    .prefmix-pair {{ display: flex; gap: 16px; }}
    .prefmix-response {{ flex: 1; padding: 12px; border: 1px solid #d0d0d0; border-radius: 4px; white-space: pre-wrap; }}
  </Style>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Which response is better? Click it."/>
  <Pairwise name="{FROM_NAME}" toName="{LEFT},{RIGHT}"
            selectionStyle="background-color: #e3f6e3; border: 2px solid #27ae60"/>
  <View className="prefmix-pair">
    <View className="prefmix-response">
      <Header value="Response A" size="5"/>
      <Text name="{LEFT}" value="${LEFT}"/>
    </View>
    <View className="prefmix-response">
      <Header value="Response B" size="5"/>
      <Text name="{RIGHT}" value="${RIGHT}"/>
    </View>
  </View>
</View>
"""

# Judgments rows: the reader's columns first (annotations/readers.py LAYOUTS["judgments"]), then ours.
JUDGMENT_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "prompt": pl.String(),
    "domain": pl.String(),
    "response_a": pl.String(),
    "response_b": pl.String(),
    "annotator_id": pl.String(),
    "preference": pl.String(),
    "review_pass": pl.Int64(),
    "is_gold": pl.Boolean(),
    "gold_answer": pl.String(),
    "adjudicated_label": pl.String(),
    "task_id": pl.String(),
    "queue_id": pl.String(),
    "record_id": pl.String(),
    "shown_order": pl.String(),
    "suggestion_shown": pl.Boolean(),
    "lead_time_s": pl.Float64(),
    "judge_choice": pl.String(),
    "judge_confidence": pl.Float64(),
    "route_score": pl.Float64(),
    "route_reason": pl.String(),
    "annotated_at": pl.Datetime("us", "UTC"),
    "ls_task_id": pl.Int64(),
    "ls_annotation_id": pl.Int64(),
}
OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "queue_id": pl.String(),
    "ls_task_id": pl.Int64(),
    "ls_annotation_id": pl.Int64(),
    "annotator_id": pl.String(),
    "outcome": pl.String(),  # submitted | skipped | cancelled | no_choice
    "suggestion_shown": pl.Boolean(),
    "lead_time_s": pl.Float64(),
}
OUTCOMES = ("submitted", "skipped", "cancelled", "no_choice")


# -- out: task payloads -------------------------------------------------------------------------


def _region_id(task_id: str) -> str:
    return "j" + hashlib.sha256(task_id.encode()).hexdigest()[:9]


def pairwise_result(position: Label) -> dict[str, Any]:
    """A Pairwise result as Label Studio's editor writes it (from_name == to_name == the control)."""
    if position == "tie":
        raise ValueError("the Pairwise control has no tie")
    return {"from_name": FROM_NAME, "to_name": FROM_NAME, "type": "pairwise", "value": {"selected": "left" if position == "a" else "right"}}


PRIVATE = ("is_gold", "gold_answer", "judge", "judge_choice", "judge_confidence", "route_score", "route_reason")


def task_payload(item: QueueItem, queue: Queue, *, keep_private: bool = False) -> dict[str, Any]:
    """One Label Studio task (import format) for one queue item.

    keep_private: leave gold answers, the judge's choice and the route score out of the task (Label Studio
    Community has no annotator role: anyone in the organization can read a task's meta through the API or an
    export); `pull`/`read_export` then need the queue to restore them.
    """
    order = shown_order(item.task_id)
    first, second = (item.response_a, item.response_b) if order == "ab" else (item.response_b, item.response_a)
    task: dict[str, Any] = {
        "data": {
            "prompt": item.prompt,
            LEFT: first,
            RIGHT: second,
            "prefmix_task_id": item.task_id,
            "suggestion_shown": item.show_suggestion,
        },
        "meta": {
            META_KEY: {
                "queue_id": queue.queue_id,
                "task_id": item.task_id,
                "record_id": item.record_id,
                "domain": item.domain,
                "shown_order": order,
                "suggestion_shown": item.show_suggestion,
                "is_gold": item.is_gold,
                "gold_answer": item.gold_label,
                "judge": queue.judge,
                "judge_choice": item.judge_choice,
                "judge_confidence": item.judge_confidence,
                "route_score": item.route_score,
                "route_reason": item.route_reason,
                "annotators": item.annotators,
            }
        },
    }
    if keep_private:
        for name in PRIVATE:
            del task["meta"][META_KEY][name]
        task["meta"][META_KEY]["private"] = True
    if item.show_suggestion and item.judge_choice is not None:
        region = {"id": _region_id(item.task_id), **pairwise_result(to_shown(item.judge_choice, order))}
        task["predictions"] = [{"model_version": queue.judge, "score": item.judge_confidence, "result": [region]}]
    return task


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_label_studio_tasks(queue: Queue, path: str | Path, *, keep_private: bool = False) -> Path:
    """The queue as a Label Studio tasks JSON file (import it into a project with LABEL_CONFIG)."""
    tasks = [task_payload(item, queue, keep_private=keep_private) for item in queue.items]
    return _atomic_write(Path(path), json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")


# -- out: a Label Studio server ------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    project_id: int
    project_title: str
    created_project: bool
    imported: int  # tasks created by this push
    already_there: int  # queue items the project already held (matched by prefmix task id)
    task_ids: dict[str, int]  # prefmix task id -> Label Studio task id (every item of the queue)
    overlap_set: int  # tasks whose overlap was set below the project's maximum_annotations


def client(url: str, token: str, *, timeout: float = 60.0) -> Any:
    """A label_studio_sdk.LabelStudio client (a legacy token or a personal access token)."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=timeout)


def find_project(ls: Any, title: str) -> Any | None:
    """The project with exactly this title (the lowest id if several), or None."""
    matches = [p for p in ls.projects.list(title=title) if p.title == title]
    return min(matches, key=lambda p: p.id) if matches else None


def _project_id(ls: Any, project: int | str) -> int:
    if isinstance(project, int):
        return project
    found = find_project(ls, project)
    if found is None:
        raise LookupError(f"no Label Studio project titled {project!r}")
    return int(found.id)


def _task_dicts(ls: Any, project_id: int, fields: str = "all") -> Iterator[dict[str, Any]]:
    for task in ls.tasks.list(project=project_id, fields=fields, page_size=100):
        yield task.model_dump(mode="json")


def push(
    queue: Queue,
    url: str,
    token: str,
    project_title: str,
    *,
    description: str | None = None,
    batch_size: int = 500,
    timeout: float = 60.0,
    keep_private: bool = False,
) -> Pushed:
    """Create (or reuse by title) a pairwise project and import the queue's tasks; idempotent per prefmix task id."""
    ls = client(url, token, timeout=timeout)
    k = queue.max_annotators
    settings = dict(
        maximum_annotations=k,
        overlap_cohort_percentage=100,
        model_version=queue.judge,
        show_collab_predictions=True,  # "use predictions to pre-label": the shown suggestion
        show_skip_button=True,
        enable_empty_annotation=False,
    )
    project = find_project(ls, project_title)
    created = project is None
    if project is None:
        project = ls.projects.create(
            title=project_title,
            description=description or f"prefmix queue {queue.queue_id}",
            label_config=LABEL_CONFIG,
            **settings,
        )
    else:
        if " ".join((project.label_config or "").split()) != " ".join(LABEL_CONFIG.split()):
            raise ValueError(f"Label Studio project {project_title!r} (id {project.id}) has another labeling config; use a new title")
        if project.maximum_annotations != k or project.model_version != queue.judge:
            settings["maximum_annotations"] = max(k, project.maximum_annotations or 1)
            ls.projects.update(project.id, **settings)
    project_id = int(project.id)

    existing = _prefmix_tasks(ls, project_id, fields="task_only")
    new = [task_payload(item, queue, keep_private=keep_private) for item in queue.items if item.task_id not in existing]
    for start in range(0, len(new), batch_size):
        ls.projects.import_tasks(project_id, request=new[start : start + batch_size], return_task_ids=True)
    tasks = _prefmix_tasks(ls, project_id, fields="task_only")
    missing = [item.task_id for item in queue.items if item.task_id not in tasks]
    if missing:
        raise RuntimeError(f"Label Studio project {project_id}: {len(missing)} tasks missing after import (first {missing[0]!r})")

    # k per item: the project gives every task maximum_annotations (and resets overlaps when that changes),
    # so every prefmix task of the project whose k is smaller gets its own overlap, this queue's and earlier ones
    maximum = ls.projects.get(project_id).maximum_annotations or 1
    overlap_set = 0
    for ls_id, overlap, k_item in tasks.values():
        want = min(k_item, maximum)
        if overlap != want:
            ls.tasks.update(str(ls_id), overlap=want)
            overlap_set += 1
    return Pushed(
        project_id=project_id,
        project_title=project_title,
        created_project=created,
        imported=len(new),
        already_there=len(queue.items) - len(new),
        task_ids={item.task_id: tasks[item.task_id][0] for item in queue.items},
        overlap_set=overlap_set,
    )


def _prefmix_tasks(ls: Any, project_id: int, fields: str) -> dict[str, tuple[int, int, int]]:
    """prefmix task id -> (Label Studio task id, overlap, k) for the project's prefmix tasks."""
    out: dict[str, tuple[int, int, int]] = {}
    for task in _task_dicts(ls, project_id, fields=fields):
        task_id = (task.get("data") or {}).get("prefmix_task_id")
        info = (task.get("meta") or {}).get(META_KEY) or {}
        if task_id is not None and task_id not in out:
            out[str(task_id)] = (int(task["id"]), int(task.get("overlap") or 1), int(info.get("annotators") or 1))
    return out


# -- back -----------------------------------------------------------------------------------------


@dataclass
class Returned:
    """What came back from one project: judgments rows, every annotation's outcome, counts."""

    frame: pl.DataFrame  # rows of a judgments shard (JUDGMENT_SCHEMA)
    outcomes: pl.DataFrame  # one row per annotation, submitted or not (OUTCOME_SCHEMA)
    counts: dict[str, int]
    source: str
    foreign_tasks: int = 0  # tasks in the project that prefmix did not push (ignored)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | Path) -> Path:
        """The judgments shard as Parquet; counts and source ride in the file's schema metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = self.frame.to_arrow()
        info = {"source": self.source, "vendor": VENDOR, "counts": self.counts, "foreign_tasks": self.foreign_tasks}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_META_KEY: json.dumps(info, sort_keys=True).encode()})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def pull(url: str, token: str, project: int | str, *, queue: Queue | None = None, timeout: float = 60.0) -> Returned:
    """Every annotation of a project (id or title) from the server (SDK task list), as judgments rows and outcomes.

    `queue`: needed only for tasks pushed with keep_private (it supplies gold answers and judge fields).
    """
    ls = client(url, token, timeout=timeout)
    project_id = _project_id(ls, project)
    return from_tasks(_task_dicts(ls, project_id), source=f"{url.rstrip('/')}/projects/{project_id}", queue=queue)


def read_export(path: str | Path, *, queue: Queue | None = None) -> Returned:
    """The same from a Label Studio JSON export file (Export -> JSON, or GET /api/projects/{id}/export)."""
    path = Path(path)
    tasks = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a Label Studio JSON export (a list of tasks)")
    return from_tasks(tasks, source=str(path), queue=queue)


def read_shard_info(path: str | Path) -> dict[str, Any] | None:
    """The counts and source that Returned.write stored in a shard's metadata, or None."""
    raw = (pq.read_schema(path).metadata or {}).get(PARQUET_META_KEY)
    return json.loads(raw) if raw else None


def _position(result: Iterable[dict[str, Any]] | None) -> Label | None:
    """The shown position a result picks: Pairwise left/right; a Choices control named FROM_NAME (A/B/Tie) also reads."""
    for region in result or []:
        if region.get("from_name") != FROM_NAME:
            continue
        value = region.get("value") or {}
        if region.get("type") == "pairwise":
            selected = value.get("selected")
            if selected in ("left", "right"):
                return "a" if selected == "left" else "b"
        if region.get("type") == "choices":
            choices = [str(c).strip().lower() for c in value.get("choices") or []]
            if len(choices) == 1 and choices[0] in ("a", "b", "tie"):
                return choices[0]  # type: ignore[return-value]
    return None


def _annotator(completed_by: Any) -> str | None:
    if isinstance(completed_by, dict):  # exports made with an expanded user
        completed_by = completed_by.get("id")
    return None if completed_by is None else f"ls-user-{int(completed_by)}"


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _private(item: QueueItem, queue: Queue) -> dict[str, Any]:
    return {"is_gold": item.is_gold, "gold_answer": item.gold_label, "judge": queue.judge, "judge_choice": item.judge_choice,
            "judge_confidence": item.judge_confidence, "route_score": item.route_score, "route_reason": item.route_reason}


def from_tasks(tasks: Iterable[dict[str, Any]], *, source: str, queue: Queue | None = None) -> Returned:
    """Label Studio tasks (API or export JSON) -> Returned. Rows are ordered by (task id, annotation id)."""
    items = {item.task_id: item for item in queue.items} if queue is not None else {}
    rows: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    foreign = 0
    tasks_seen = 0
    per_task: dict[str, int] = {}
    wanted: dict[str, int] = {}
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        info = (task.get("meta") or {}).get(META_KEY)
        data = task.get("data") or {}
        if not info or "prefmix_task_id" not in data:
            foreign += 1
            continue
        tasks_seen += 1
        task_id = str(info["task_id"])
        if info.get("private"):
            if task_id not in items or queue is None or queue.queue_id != info["queue_id"]:
                raise ValueError(f"{source}: task {task_id} was pushed with keep_private; pass its queue ({info['queue_id']})")
            info = {**info, **_private(items[task_id], queue)}
        order: Order = info["shown_order"]
        response_a, response_b = (data[LEFT], data[RIGHT]) if order == "ab" else (data[RIGHT], data[LEFT])
        shown = bool(info.get("suggestion_shown", data.get("suggestion_shown")))
        per_task.setdefault(task_id, 0)
        wanted[task_id] = int(info.get("annotators") or 1)
        for ann in sorted(task.get("annotations") or [], key=lambda a: int(a["id"])):
            position = _position(ann.get("result"))
            if ann.get("was_cancelled"):
                outcome = "cancelled" if position is not None else "skipped"
            else:
                outcome = "submitted" if position is not None else "no_choice"
            annotator = _annotator(ann.get("completed_by"))
            lead = ann.get("lead_time")
            lead_s = None if lead is None else float(lead)
            outcomes.append(
                {
                    "task_id": task_id,
                    "queue_id": info["queue_id"],
                    "ls_task_id": int(task["id"]),
                    "ls_annotation_id": int(ann["id"]),
                    "annotator_id": annotator,
                    "outcome": outcome,
                    "suggestion_shown": shown,
                    "lead_time_s": lead_s,
                }
            )
            if outcome != "submitted":
                continue
            per_task[task_id] += 1
            rows.append(
                {
                    "item_id": task_id,
                    "prompt": data["prompt"],
                    "domain": info["domain"],
                    "response_a": response_a,
                    "response_b": response_b,
                    "annotator_id": annotator,
                    "preference": from_shown(position, order),  # type: ignore[arg-type]
                    "review_pass": 1,
                    "is_gold": bool(info.get("is_gold", False)),
                    "gold_answer": info.get("gold_answer"),
                    "adjudicated_label": None,
                    "task_id": task_id,
                    "queue_id": info["queue_id"],
                    "record_id": info.get("record_id"),
                    "shown_order": order,
                    "suggestion_shown": shown,
                    "lead_time_s": lead_s,
                    "judge_choice": info.get("judge_choice"),
                    "judge_confidence": info.get("judge_confidence"),
                    "route_score": info.get("route_score"),
                    "route_reason": info.get("route_reason"),
                    "annotated_at": _timestamp(ann.get("created_at")),
                    "ls_task_id": int(task["id"]),
                    "ls_annotation_id": int(ann["id"]),
                }
            )
    frame = pl.DataFrame(rows, schema=JUDGMENT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=JUDGMENT_SCHEMA)
    outcome_frame = pl.DataFrame(outcomes, schema=OUTCOME_SCHEMA, orient="row") if outcomes else pl.DataFrame(schema=OUTCOME_SCHEMA)
    by_outcome = {name: int((outcome_frame.get_column("outcome") == name).sum()) for name in OUTCOMES}
    counts = {
        "tasks": tasks_seen,
        "annotations": outcome_frame.height,
        **by_outcome,
        "tasks_complete": sum(1 for t, n in per_task.items() if n >= wanted[t]),
        "tasks_partial": sum(1 for t, n in per_task.items() if 0 < n < wanted[t]),
        "tasks_unanswered": sum(1 for n in per_task.values() if n == 0),
    }
    return Returned(frame=frame, outcomes=outcome_frame, counts=counts, source=source, foreign_tasks=foreign)


# -- Argilla v2 files --------------------------------------------------------------------------------

ARGILLA_QUESTION = "preference"
ARGILLA_HIDDEN_TERMS = ("queue_id", "record_id", "shown_order", "suggestion_shown", "is_gold", "gold_answer", "judge_choice", "route_reason")


@contextmanager
def _offline_argilla() -> Iterator[Any]:
    """An argilla client that never connects, installed as the SDK's default while settings objects are built.

    argilla 2.x builds every field/question/metadata object with a client (`Argilla._get_default()`, which
    otherwise logs in to a server at construction). Nothing here sends a request: the URL is a closed
    loopback port and only local serializers run. The previous default is restored (not thread-safe).
    """
    import argilla as rg
    from argilla._api._client import ArgillaAPI
    from argilla._api._http import create_http_client

    class _Offline(rg.Argilla):
        def __init__(self) -> None:  # no super().__init__: it would log in
            self.api_url = "http://127.0.0.1:9"
            self.api_key = "offline"
            self.http_client = create_http_client(api_url=self.api_url, api_key=self.api_key, timeout=1, retries=0)
            self.api = ArgillaAPI(self.http_client)

    previous = rg.Argilla._default_client
    offline = _Offline()
    rg.Argilla._default_client = offline
    try:
        yield offline
    finally:
        rg.Argilla._default_client = previous


def argilla_settings(queue: Queue) -> Any:
    """rg.Settings: prompt + the two responses as shown, a LabelQuestion over shown positions, k as overlap."""
    import argilla as rg

    metadata: list[Any] = [rg.TermsMetadataProperty("domain", title="Domain")]
    metadata += [rg.TermsMetadataProperty(name, visible_for_annotators=False) for name in ARGILLA_HIDDEN_TERMS]
    metadata += [
        rg.FloatMetadataProperty("judge_confidence", visible_for_annotators=False),
        rg.FloatMetadataProperty("route_score", visible_for_annotators=False),
        rg.IntegerMetadataProperty("annotators", visible_for_annotators=False),
    ]
    return rg.Settings(
        guidelines=(
            "Read the prompt and both responses; pick the better response. A suggestion, where present, "
            "is a model's pick and may be wrong."
        ),
        fields=[
            rg.TextField("prompt", title="Prompt"),
            rg.TextField("response_a", title="Response A"),
            rg.TextField("response_b", title="Response B"),
        ],
        questions=[
            rg.LabelQuestion(ARGILLA_QUESTION, title="Which response is better?", labels={"a": "Response A", "b": "Response B"})
        ],
        metadata=metadata,
        distribution=rg.TaskDistribution(min_submitted=queue.max_annotators),
        allow_extra_metadata=False,
    )


def argilla_record(item: QueueItem, queue: Queue) -> Any:
    """rg.Record: the responses in the shown order (response_a is shown first); the suggestion when shown."""
    import argilla as rg

    order = shown_order(item.task_id)
    first, second = (item.response_a, item.response_b) if order == "ab" else (item.response_b, item.response_a)
    metadata: dict[str, Any] = {
        "domain": item.domain,
        "queue_id": queue.queue_id,
        "record_id": item.record_id,
        "shown_order": order,
        "suggestion_shown": str(item.show_suggestion).lower(),
        "is_gold": str(item.is_gold).lower(),
        "route_reason": item.route_reason,
        "route_score": float(item.route_score),
        "annotators": int(item.annotators),
    }
    # a gold item has no judge: its judge fields are left out, not written as nulls
    if item.judge_choice is not None:
        metadata["judge_choice"] = item.judge_choice
    if item.judge_confidence is not None:
        metadata["judge_confidence"] = float(item.judge_confidence)
    if item.gold_label is not None:
        metadata["gold_answer"] = item.gold_label
    suggestions = []
    if item.show_suggestion and item.judge_choice is not None and item.judge_confidence is not None:
        suggestions.append(
            rg.Suggestion(ARGILLA_QUESTION, to_shown(item.judge_choice, order), score=float(item.judge_confidence), agent=queue.judge)
        )
    return rg.Record(
        id=item.task_id,
        fields={"prompt": item.prompt, "response_a": first, "response_b": second},
        metadata=metadata,
        suggestions=suggestions,
    )


def write_argilla_dataset(queue: Queue, directory: str | Path, *, name: str | None = None, workspace: str = "prefmix") -> Path:
    """An Argilla v2 dataset on disk, in the layout `rg.Dataset.to_disk` writes and `rg.Dataset.from_disk` reads.

    `to_disk` itself needs a server for the records (it iterates them from the API) and for the
    workspace id, so: the dataset model and settings are written by the SDK's own `to_disk(with_records=False)`
    with an offline client and a placeholder workspace (`from_disk` replaces the workspace id with the
    target's), and the records by the SDK's JsonIO.to_json — the function `DatasetRecords.to_json` calls.
    Files: .argilla/dataset.json, .argilla/settings.json, records.json. The directory must be empty or absent.
    """
    import uuid

    import argilla as rg
    from argilla.records._io._json import JsonIO

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory}: not empty; an Argilla dataset directory is written whole")
    directory.mkdir(parents=True, exist_ok=True)
    with _offline_argilla():
        settings = argilla_settings(queue)
        placeholder = rg.Workspace(name=workspace, id=uuid.UUID(int=0))
        dataset = rg.Dataset(name=name or queue.queue_id, settings=settings, workspace=placeholder)
        dataset.to_disk(str(directory), with_records=False)
        records = [argilla_record(item, queue) for item in queue.items]
        JsonIO.to_json(records=records, path=directory / "records.json")
    return directory


def read_argilla_dataset(directory: str | Path) -> tuple[Any, list[Any]]:
    """(rg.Settings, [rg.Record]) back from a directory write_argilla_dataset wrote, without a server."""
    import argilla as rg
    from argilla.records._io._json import JsonIO

    directory = Path(directory)
    with _offline_argilla():
        settings = rg.Settings.from_json(directory / ".argilla" / "settings.json")
        records = JsonIO._records_from_json(directory / "records.json")
    return settings, records
