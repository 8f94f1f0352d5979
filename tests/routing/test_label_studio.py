"""End to end against a real Label Studio server: push a queue, simulated annotators submit as themselves
through the API, pull, and the answers enter prefmix.annotations unchanged as a judgments shard."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Any

import polars as pl
import pytest
from prefmix.annotations.aggregate import aggregate
from prefmix.annotations.ingest import ingest_shards
from prefmix.annotations.readers import read_shard
from prefmix.routing import label_studio as ls_mod
from prefmix.routing.queue import shown_order

from prefmix.config import Aggregation, HumanShard
from tests.routing.routing_queue_helpers import DOMAINS, build_queue
from tests.routing.simulated_annotators import Act, panel, run_annotators, sign_up

pytestmark = pytest.mark.labelstudio

PERSONAS = panel(steady_error=0.15, steady_cancel=0.2, hasty_error=0.25, hasty_skip=0.2)
SEED = 11


@pytest.fixture(scope="module")
def round_trip(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One push, one round of simulated annotation, one pull and one export, shared by the checks below."""
    queue, truth = build_queue(40)
    title = label_studio.title("prefmix e2e rq-test-001")
    began = time.monotonic()
    pushed = ls_mod.push(queue, label_studio.url, label_studio.token, title)
    timings = {"push_s": time.monotonic() - began}
    annotators = sign_up(label_studio, PERSONAS)
    began = time.monotonic()
    acts = run_annotators(label_studio.url, pushed.project_id, annotators, queue, truth, seed=SEED)
    timings["annotate_s"] = time.monotonic() - began
    began = time.monotonic()
    returned = ls_mod.pull(label_studio.url, label_studio.token, title)
    timings["pull_s"] = time.monotonic() - began
    began = time.monotonic()
    export = ls_mod.client(label_studio.url, label_studio.token).projects.exports.as_json(pushed.project_id)
    timings["export_s"] = time.monotonic() - began
    print(f"label studio round trip: {len(acts)} annotations; " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    folder = tmp_path_factory.mktemp("round-trip")
    export_path = folder / "export.json"
    export_path.write_text(json.dumps(export))
    return {"queue": queue, "truth": truth, "pushed": pushed, "title": title, "acts": acts, "returned": returned,
            "export_path": export_path, "folder": folder, "annotators": annotators}


def test_push_creates_one_task_per_item_and_is_idempotent(label_studio: Any, round_trip: dict[str, Any]) -> None:
    queue, pushed = round_trip["queue"], round_trip["pushed"]
    assert pushed.created_project and pushed.imported == 40 and pushed.already_there == 0
    assert set(pushed.task_ids) == {item.task_id for item in queue.items}
    again = ls_mod.push(queue, label_studio.url, label_studio.token, round_trip["title"])
    assert (again.created_project, again.imported, again.already_there, again.overlap_set) == (False, 0, 40, 0)
    assert again.project_id == pushed.project_id and again.task_ids == pushed.task_ids

    sdk = ls_mod.client(label_studio.url, label_studio.token)
    project = sdk.projects.get(pushed.project_id)
    assert (project.maximum_annotations, project.overlap_cohort_percentage) == (3, 100)
    assert project.model_version == queue.judge and project.show_collab_predictions
    overlaps = {t.data["prefmix_task_id"]: t.overlap for t in sdk.tasks.list(project=pushed.project_id, fields="task_only")}
    assert overlaps == {item.task_id: item.annotators for item in queue.items}


def test_tasks_hold_recorded_order_and_suggestion_only_where_shown(label_studio: Any, round_trip: dict[str, Any]) -> None:
    queue, pushed = round_trip["queue"], round_trip["pushed"]
    sdk = ls_mod.client(label_studio.url, label_studio.token)
    tasks = {t.data["prefmix_task_id"]: t.model_dump(mode="json") for t in sdk.tasks.list(project=pushed.project_id, fields="all")}
    orders = Counter()
    for item in queue.items:
        task = tasks[item.task_id]
        meta = task["meta"]["prefmix"]
        assert meta["shown_order"] == shown_order(item.task_id)
        orders[meta["shown_order"]] += 1
        first = item.response_a if meta["shown_order"] == "ab" else item.response_b
        assert task["data"][ls_mod.LEFT] == first and task["data"]["suggestion_shown"] is item.show_suggestion
        predictions = task["predictions"]
        if item.show_suggestion:
            (prediction,) = predictions
            assert prediction["model_version"] == queue.judge and prediction["score"] == pytest.approx(item.judge_confidence)
            selected = prediction["result"][0]["value"]["selected"]
            shown_text = task["data"][ls_mod.LEFT if selected == "left" else ls_mod.RIGHT]
            assert shown_text == (item.response_a if item.judge_choice == "a" else item.response_b)
        else:
            assert predictions == []
    assert orders["ab"] > 5 and orders["ba"] > 5  # both orders really occur


def test_pull_unswaps_what_each_annotator_meant(round_trip: dict[str, Any]) -> None:
    acts: list[Act] = round_trip["acts"]
    frame = round_trip["returned"].frame
    submitted = {(a.annotator_id, a.ls_annotation_id): a for a in acts if a.outcome == "submitted"}
    assert frame.height == len(submitted)
    for row in frame.iter_rows(named=True):
        act = submitted[(row["annotator_id"], row["ls_annotation_id"])]
        assert row["item_id"] == row["task_id"] == act.task_id
        assert row["preference"] == act.meant
        assert row["lead_time_s"] == pytest.approx(act.lead_time_s)
        assert row["suggestion_shown"] is act.suggestion_seen
        assert row["shown_order"] == shown_order(act.task_id)
    # the presentation swap was exercised in both directions, and un-swapping changed labels
    flipped = frame.filter(pl.col("shown_order") == "ba")
    assert flipped.height > 10 and frame.filter(pl.col("shown_order") == "ab").height > 10


def test_counts_outcomes_and_overlap(round_trip: dict[str, Any]) -> None:
    acts: list[Act] = round_trip["acts"]
    queue = round_trip["queue"]
    returned = round_trip["returned"]
    by_outcome = Counter(a.outcome for a in acts)
    assert by_outcome["skipped"] > 0 and by_outcome["cancelled"] > 0
    counts = returned.counts
    assert counts["submitted"] == by_outcome["submitted"]
    assert counts["skipped"] == by_outcome["skipped"] and counts["cancelled"] == by_outcome["cancelled"]
    assert counts["no_choice"] == 0 and counts["annotations"] == len(acts) and counts["tasks"] == 40
    # Label Studio's overlap gave every task exactly k submitted answers, from k distinct people
    per_task = returned.frame.group_by("task_id").agg(n=pl.len(), people=pl.col("annotator_id").n_unique())
    want = {item.task_id: item.annotators for item in queue.items}
    assert {r["task_id"]: (r["n"], r["people"]) for r in per_task.iter_rows(named=True)} == {t: (k, k) for t, k in want.items()}
    assert counts["tasks_complete"] == 40 and counts["tasks_partial"] == counts["tasks_unanswered"] == 0
    outcomes = returned.outcomes
    assert dict(Counter(outcomes.get_column("outcome").to_list())) == dict(by_outcome)
    leads = {(r["annotator_id"], r["ls_annotation_id"]): r["lead_time_s"] for r in outcomes.iter_rows(named=True)}
    assert all(leads[(a.annotator_id, a.ls_annotation_id)] == pytest.approx(a.lead_time_s) for a in acts)


def test_export_file_gives_the_same_frame(round_trip: dict[str, Any]) -> None:
    api = round_trip["returned"]
    from_file = ls_mod.read_export(round_trip["export_path"])
    assert from_file.frame.equals(api.frame)
    assert from_file.outcomes.equals(api.outcomes)
    assert from_file.counts == api.counts


def test_judgments_shard_reads_and_aggregates_unchanged(round_trip: dict[str, Any]) -> None:
    queue, truth, acts = round_trip["queue"], round_trip["truth"], round_trip["acts"]
    returned = round_trip["returned"]
    path = returned.write(round_trip["folder"] / "label-studio-rq-test-001.parquet")
    assert ls_mod.read_shard_info(path)["counts"] == returned.counts
    shard = read_shard(HumanShard(path=str(path), layout="judgments", vendor="label-studio"), DOMAINS)
    # the reader keeps the extra columns, in the file's values
    for name in ("lead_time_s", "suggestion_shown", "shown_order", "task_id", "queue_id", "judge_choice", "route_reason"):
        assert name in shard.frame.columns
    assert shard.frame.get_column("lead_time_s").to_list() == returned.frame.get_column("lead_time_s").to_list()

    result = aggregate(shard, Aggregation(min_annotators=1, min_agreement=0.5))
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for act in acts:
        if act.outcome == "submitted":
            votes[act.task_id][act.meant] += 1
    items = {item.task_id: item for item in queue.items}
    expected: dict[str, str] = {}
    for task_id, counter in votes.items():
        if items[task_id].is_gold:
            continue
        (top, n), *rest = counter.most_common()
        if rest and rest[0][1] == n:
            continue  # a draw is a tie: no pair
        expected[task_id] = top
    records = result.records
    assert records.height == len(expected)
    by_prompt = {r["prompt"]: r for r in records.iter_rows(named=True)}
    for task_id, label in expected.items():
        item = items[task_id]
        record = by_prompt[item.prompt]
        chosen = item.response_a if label == "a" else item.response_b
        assert record["chosen"] == chosen and record["source"] == "human"
        assert record["annotation"]["vendor"] == "label-studio"
    reasons = Counter(result.rejections.get_column("reason").to_list())
    assert reasons["gold_item"] == sum(1 for item in queue.items if item.is_gold)
    # most human majorities match the known truth (annotators are mostly honest)
    right = sum(1 for task_id, label in expected.items() if label == truth[task_id])
    assert right / len(expected) > 0.8

    # the whole ingest (gold calibration, agreement) runs on it unchanged
    ingest = ingest_shards([HumanShard(path=str(path), layout="judgments", vendor="label-studio")], DOMAINS,
                           Aggregation(min_annotators=1, min_agreement=0.5, min_gold_accuracy=0.0))
    stats = ingest.stats["shards"][0]
    assert stats["reconciled"] and stats["gold_items"] == 4
    assert stats["agreement"]["alpha"] is not None
    assert {a["annotator_id"] for a in stats["annotators"]} == {a.annotator_id for a in round_trip["annotators"]}


def test_anchoring_shows_in_the_returned_rows(round_trip: dict[str, Any]) -> None:
    """The rows carry what an anchoring check needs: per annotator, agreement with the judge beyond what the other
    annotators of the same task show (paired, so item difficulty cancels), when the suggestion was shown vs hidden.
    The annotator who follows the suggestion stands out; honest ones do not."""
    frame = round_trip["returned"].frame.with_columns(agrees=(pl.col("preference") == pl.col("judge_choice")).cast(pl.Float64))
    frame = frame.with_columns(n=pl.len().over("task_id"), total=pl.col("agrees").sum().over("task_id"))
    frame = frame.filter(pl.col("n") > 1).with_columns(
        excess=pl.col("agrees") - (pl.col("total") - pl.col("agrees")) / (pl.col("n") - 1)
    )
    table = frame.group_by("annotator_id", "suggestion_shown").agg(pl.col("excess").mean(), pl.col("agrees").mean().alias("rate"))
    excess = {(r["annotator_id"], r["suggestion_shown"]): r["excess"] for r in table.iter_rows(named=True)}
    rate = {(r["annotator_id"], r["suggestion_shown"]): r["rate"] for r in table.iter_rows(named=True)}
    gap = {who: excess[(who, True)] - excess[(who, False)] for who, _ in excess}
    anchored = next(a.annotator_id for a in round_trip["annotators"] if a.persona.follows_suggestion)
    assert rate[(anchored, True)] == 1.0  # always agrees with a shown suggestion
    assert gap[anchored] == max(gap.values()) and gap[anchored] > 0.2
    assert all(g < 0.2 for who, g in gap.items() if who != anchored), gap
    assert frame.filter(pl.col("annotator_id") == anchored).get_column("lead_time_s").max() <= 6.0
