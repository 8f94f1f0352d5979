"""Without a server: the queue model, the Label Studio tasks file, reading answers back from an export-shaped
file (un-swap, outcomes, keep_private), the judgments shard through prefmix.annotations, and the Argilla v2
dataset on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefmix.annotations.aggregate import aggregate
from prefmix.annotations.readers import read_shard
from prefmix.routing import label_studio as ls_mod
from prefmix.routing.queue import Queue, QueueItem, from_shown, shown_order, to_shown
from pydantic import ValidationError

from prefmix.config import Aggregation, HumanShard
from tests.routing.conftest import need
from tests.routing.routing_queue_helpers import DOMAINS, JUDGE, build_queue

# -- queue --------------------------------------------------------------------------------------------


def test_queue_rejects_duplicate_task_ids_and_gold_without_label() -> None:
    queue, _ = build_queue(4)
    item = queue.items[0]
    with pytest.raises(ValidationError, match="appears twice"):
        Queue(queue_id="q", items=[item, item])
    with pytest.raises(ValidationError, match="gold_label"):
        QueueItem(**{**item.model_dump(), "is_gold": True, "gold_label": None})
    with pytest.raises(ValidationError):
        QueueItem(**{**item.model_dump(), "judge_confidence": 1.5})


def test_shown_order_is_a_function_of_the_task_id_and_swaps_back() -> None:
    orders = [shown_order(f"task-{i}") for i in range(400)]
    assert orders == [shown_order(f"task-{i}") for i in range(400)]
    assert 150 < orders.count("ab") < 250
    for order in ("ab", "ba"):
        for label in ("a", "b", "tie"):
            assert from_shown(to_shown(label, order), order) == label  # type: ignore[arg-type]
    assert to_shown("a", "ba") == "b" and to_shown("tie", "ba") == "tie"


# -- Label Studio tasks file ----------------------------------------------------------------------------


def test_tasks_file_records_order_suggestions_and_hides_private_fields(tmp_path: Path) -> None:
    queue, _ = build_queue(40)
    path = ls_mod.write_label_studio_tasks(queue, tmp_path / "tasks.json")
    assert path.read_bytes() == ls_mod.write_label_studio_tasks(queue, tmp_path / "again.json").read_bytes()  # deterministic
    tasks = json.loads(path.read_text())
    assert len(tasks) == 40
    for item, task in zip(queue.items, tasks):
        data, meta = task["data"], task["meta"]["prefmix"]
        order = shown_order(item.task_id)
        assert meta["shown_order"] == order and meta["task_id"] == item.task_id and meta["queue_id"] == queue.queue_id
        assert (data[ls_mod.LEFT], data[ls_mod.RIGHT]) == ((item.response_a, item.response_b) if order == "ab" else (item.response_b, item.response_a))
        assert data["prefmix_task_id"] == item.task_id and data["suggestion_shown"] is item.show_suggestion
        assert set(data) == {"prompt", ls_mod.LEFT, ls_mod.RIGHT, "prefmix_task_id", "suggestion_shown"}  # nothing else rendered
        if item.show_suggestion:
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == JUDGE and prediction["score"] == item.judge_confidence
            (region,) = prediction["result"]
            assert (region["from_name"], region["to_name"], region["type"]) == ("preference", "preference", "pairwise")
            side = region["value"]["selected"]
            assert data[ls_mod.LEFT if side == "left" else ls_mod.RIGHT] == (item.response_a if item.judge_choice == "a" else item.response_b)
        else:
            assert "predictions" not in task
    private = json.loads(ls_mod.write_label_studio_tasks(queue, tmp_path / "private.json", keep_private=True).read_text())
    for task in private:
        assert not set(ls_mod.PRIVATE) & set(task["meta"]["prefmix"]) and task["meta"]["prefmix"]["private"] is True


def test_label_config_parses_with_the_sdk_and_matches_task_data() -> None:
    sdk = need("label_studio_sdk")  # noqa: F841
    from label_studio_sdk.label_interface import LabelInterface

    interface = LabelInterface(ls_mod.LABEL_CONFIG)
    control = interface.get_control(ls_mod.FROM_NAME)
    assert control.tag == "Pairwise" and control.to_name == [ls_mod.LEFT, ls_mod.RIGHT]
    queue, _ = build_queue(2)
    assert interface.validate_task({"data": ls_mod.task_payload(queue.items[0], queue)["data"]})
    # the editor's Pairwise result names the control itself (from_name == to_name), as the SDK's own label() does
    assert {k: v for k, v in control.label("left")._dict().items() if k != "id"} == ls_mod.pairwise_result("a")


# -- back, from an export-shaped file ---------------------------------------------------------------------


def _fake_export(queue: Queue, answers: dict[str, list[tuple[int, str | None, bool, float]]], *, keep_private: bool = False) -> list[dict[str, Any]]:
    """Label Studio export JSON for the queue: answers[task_id] = [(user id, shown position a/b/None, cancelled, lead)]."""
    tasks = []
    annotation_id = 100
    for ls_id, item in enumerate(queue.items, start=1):
        task = ls_mod.task_payload(item, queue, keep_private=keep_private)
        annotations = []
        for user, position, cancelled, lead in answers.get(item.task_id, []):
            annotation_id += 1
            result = [] if position is None else [{"id": "r1", **ls_mod.pairwise_result(position)}]  # type: ignore[arg-type]
            annotations.append({"id": annotation_id, "completed_by": user, "result": result, "was_cancelled": cancelled,
                                "ground_truth": False, "lead_time": lead, "created_at": "2026-12-01T10:00:00.123456Z"})
        tasks.append({"id": ls_id, "data": task["data"], "meta": task["meta"], "annotations": annotations,
                      "predictions": [], "drafts": []})
    tasks.append({"id": 999, "data": {"text": "someone else's task"}, "meta": {}, "annotations": [{"id": 5, "completed_by": 1, "result": []}]})
    return tasks


def test_read_export_unswaps_counts_outcomes_and_feeds_the_reader(tmp_path: Path) -> None:
    queue, _ = build_queue(8)
    ab = next(i for i in queue.items if shown_order(i.task_id) == "ab" and not i.is_gold)
    ba = next(i for i in queue.items if shown_order(i.task_id) == "ba" and not i.is_gold)
    answers = {
        # user 2 clicks the left response on both tasks: prefmix "a" on the ab task, "b" on the ba task
        ab.task_id: [(2, "a", False, 12.5), (3, "a", False, 30.0), (4, None, True, 1.0)],
        ba.task_id: [(2, "a", False, 8.0), (3, "b", False, 9.0), (4, "b", True, 2.0), (5, None, False, 3.0)],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_fake_export(queue, answers)))
    back = ls_mod.read_export(path)
    rows = {(r["task_id"], r["annotator_id"]): r for r in back.frame.iter_rows(named=True)}
    assert rows[(ab.task_id, "ls-user-2")]["preference"] == "a" and rows[(ab.task_id, "ls-user-3")]["preference"] == "a"
    assert rows[(ba.task_id, "ls-user-2")]["preference"] == "b" and rows[(ba.task_id, "ls-user-3")]["preference"] == "a"
    assert rows[(ba.task_id, "ls-user-2")]["response_a"] == ba.response_a  # prefmix order restored
    assert rows[(ab.task_id, "ls-user-2")]["lead_time_s"] == 12.5
    assert back.counts == {"tasks": 8, "annotations": 7, "submitted": 4, "skipped": 1, "cancelled": 1, "no_choice": 1,
                           "tasks_complete": 0, "tasks_partial": 2, "tasks_unanswered": 6}
    assert back.foreign_tasks == 1
    assert list(back.frame.columns[:11]) == ["item_id", "prompt", "domain", "response_a", "response_b", "annotator_id",
                                             "preference", "review_pass", "is_gold", "gold_answer", "adjudicated_label"]

    shard_path = back.write(tmp_path / "shard.parquet")
    assert ls_mod.read_shard_info(shard_path)["counts"] == back.counts
    shard = read_shard(HumanShard(path=str(shard_path), layout="judgments", vendor="label-studio"), DOMAINS)
    assert set(ls_mod.JUDGMENT_SCHEMA) <= set(shard.frame.columns)  # extra columns pass through the reader
    result = aggregate(shard, Aggregation(min_annotators=2, min_agreement=0.5))
    assert result.records.height == 1  # the ab task: 2 votes for a; the ba task: a draw -> tie
    record = result.records.row(0, named=True)
    assert (record["chosen"], record["rejected"]) == (ab.response_a, ab.response_b)
    assert sorted(result.rejections.get_column("reason").to_list()) == ["tie"]


def test_keep_private_needs_the_queue_on_the_way_back(tmp_path: Path) -> None:
    queue, _ = build_queue(4)
    item = queue.items[1]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_fake_export(queue, {item.task_id: [(2, "b", False, 4.0)]}, keep_private=True)))
    with pytest.raises(ValueError, match="keep_private"):
        ls_mod.read_export(path)
    back = ls_mod.read_export(path, queue=queue)
    row = back.frame.row(0, named=True)
    assert row["judge_choice"] == item.judge_choice and row["route_reason"] == item.route_reason
    assert row["preference"] == ("b" if shown_order(item.task_id) == "ab" else "a")


def test_choices_config_answers_also_read() -> None:
    queue, _ = build_queue(2)
    item = queue.items[1]
    task = ls_mod.task_payload(item, queue)
    result = [{"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": ["Tie"]}}]
    back = ls_mod.from_tasks([{"id": 1, **task, "annotations": [{"id": 1, "completed_by": 7, "result": result, "lead_time": 1}]}], source="x")
    assert back.frame.get_column("preference").to_list() == ["tie"]


def test_empty_project_gives_a_typed_empty_frame() -> None:
    back = ls_mod.from_tasks([], source="nothing")
    assert back.frame.height == 0 and dict(back.frame.schema) == ls_mod.JUDGMENT_SCHEMA
    assert back.counts["tasks"] == 0


# -- Argilla v2 dataset on disk ---------------------------------------------------------------------------


def test_argilla_dataset_on_disk_is_rereadable(tmp_path: Path) -> None:
    need("argilla")
    queue, _ = build_queue(20)
    folder = ls_mod.write_argilla_dataset(queue, tmp_path / "argilla")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        ".argilla/dataset.json", ".argilla/settings.json", "records.json"]
    model = json.loads((folder / ".argilla" / "dataset.json").read_text())
    assert model["name"] == queue.queue_id

    settings, records = ls_mod.read_argilla_dataset(folder)
    assert [f.name for f in settings.fields] == ["prompt", "response_a", "response_b"]
    (question,) = settings.questions
    assert question.name == "preference" and question.labels == ["a", "b"]
    assert settings.distribution.min_submitted == queue.max_annotators == 3
    visible = {m.name: m.visible_for_annotators for m in settings.metadata}
    assert visible["domain"] and not any(visible[name] for name in ("gold_answer", "judge_choice", "shown_order", "route_score"))

    assert [r.id for r in records] == [i.task_id for i in queue.items]
    for item, record in zip(queue.items, records):
        order = shown_order(item.task_id)
        assert record.metadata["shown_order"] == order
        first = item.response_a if order == "ab" else item.response_b
        assert record.fields["response_a"] == first and record.fields["prompt"] == item.prompt
        if item.show_suggestion:
            suggestion = record.suggestions["preference"]
            assert suggestion.agent == JUDGE and suggestion.score == pytest.approx(item.judge_confidence)
            assert from_shown(suggestion.value, order) == item.judge_choice
        else:
            assert "preference" not in record.to_dict()["suggestions"]
        assert record.metadata.get("gold_answer") == item.gold_label

    with pytest.raises(FileExistsError):
        ls_mod.write_argilla_dataset(queue, folder)


def test_module_imports_without_the_sdks() -> None:
    """prefmix.routing.label_studio imports neither label_studio_sdk nor argilla at import time."""
    import subprocess
    import sys

    code = ("import sys; import prefmix.routing.label_studio; "
            "bad = [m for m in ('label_studio_sdk', 'argilla') if m in sys.modules]; sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
    assert pl  # polars is the only table library here
