"""Step labels (PRM layout): human reviews by the first-error rule, Monte Carlo labels from outcomes."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
from prefmix.annotations import agreement
from prefmix.trajectories.config import MonteCarlo, Reviews, Rules
from prefmix.trajectories.derive import derive
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.reviews import read_reviews

from prefmix.errors import InputError
from prefmix.records import STEP_LABEL_SCHEMA, step_labels_to_arrow
from tests.trajectories.traj_helpers import DATA, agent, base, chat_run, write_jsonl

AGENT_STEPS = 6  # steps 3..8 of every run below (1 system, 2 user)


def _runs(tmp_path: Path, n: int) -> pl.DataFrame:
    lines = [chat_run(f"T{i}", base(f"T{i}") + [agent(f"step {j} of run {i}", (f"c{j}", "bash", f'{{"n": {j}}}'), f"out {j}") for j in range(AGENT_STEPS)],
                      i % 2 == 0, f"run-{i}") for i in range(n)]
    frame, _ = read_trajectories([write_jsonl(tmp_path / "runs.jsonl", lines)])
    return frame


def _reviews(tmp_path: Path, rows: list[dict], name: str = "reviews.parquet") -> Path:
    defaults = {"review_pass": 1, "adjudicated": False, "is_gold": False, "gold_rating": None}
    path = tmp_path / name
    pl.DataFrame([{**defaults, **r} for r in rows], schema_overrides={"gold_rating": pl.Int64}).write_parquet(path)
    return path


def _reference(ratings: dict[int, int | None], zero_good: bool) -> list[bool]:
    """First-error rule, written as a plain loop over agent steps 3..8."""
    out: list[bool] = []
    for step in range(3, 3 + AGENT_STEPS):
        rating = ratings.get(step)
        if rating is None:
            break
        label = rating == 1 or (rating == 0 and zero_good)
        out.append(label)
        if not label:
            break
    return out


@pytest.mark.parametrize("zero_rating", ["good", "bad"])
def test_first_error_labels_are_monotone_and_match_the_rule(tmp_path: Path, zero_rating: str) -> None:
    rng = random.Random(17)
    frame = _runs(tmp_path, 40)
    rows, decided = [], {}
    for i in range(40):
        decided[f"run-{i}"] = {}
        for step in range(3, 3 + AGENT_STEPS):
            if rng.random() < 0.1:
                continue  # not reviewed: the labelled part ends before it
            rating = rng.choices([1, 0, -1], weights=[6, 2, 1])[0]
            decided[f"run-{i}"][step] = rating
            rows.append({"annotator_id": f"a{rng.randrange(3)}", "trajectory_id": f"run-{i}", "step": step, "rating": rating})
    reviews = read_reviews(_reviews(tmp_path, rows))
    result = derive(frame, "labels", Rules(reviews=Reviews(zero_rating=zero_rating)), reviews)  # type: ignore[arg-type]
    got = dict(zip(result.rows.get_column("trajectory_id").to_list(), result.rows.get_column("labels").to_list()))
    for tid, ratings in decided.items():
        expected = _reference(ratings, zero_rating == "good")
        assert got.get(tid, []) == expected
    for labels in got.values():
        assert labels and all(labels[:-1])  # true, ..., true and at most one false, at the end
        assert all(a >= b for a, b in zip(labels, labels[1:]))  # monotone
    assert result.summary.reconciled
    assert result.rows.select(pl.col("completions").list.len() == pl.col("labels").list.len()).to_series().all()
    assert step_labels_to_arrow(result.rows).schema == STEP_LABEL_SCHEMA


def test_completions_are_agent_steps_with_results_and_the_prompt_is_the_task(tmp_path: Path) -> None:
    frame = _runs(tmp_path, 1)
    rows = [{"annotator_id": "a", "trajectory_id": "run-0", "step": s, "rating": 1} for s in (3, 4)]
    row = derive(frame, "labels", reviews=read_reviews(_reviews(tmp_path, rows))).rows.row(0, named=True)
    assert row["steps"] == [3, 4] and row["labels"] == [True, True]
    assert row["completions"][0] == '<assistant>\nstep 0 of run 0\n<call bash>{"n": 0}\n<tool>\nout 0'
    assert row["prompt"].startswith("<system>\n") and "<assistant>" not in row["prompt"]
    assert row["source"] == "human" and row["label_method"] == "human_first_error"


def test_review_fixture_gold_calibration_passes_and_adjudication() -> None:
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    reviews = read_reviews(DATA / "step_reviews.jsonl", vendor="acme-labels")
    result = derive(frame, "labels", reviews=reviews)
    labels = dict(zip(result.rows.get_column("trajectory_id").to_list(), result.rows.get_column("labels").to_list()))
    assert labels == {"T1-ok": [True, True, True], "T1-bad": [True, False], "T2-b": [True, True]}
    assert result.summary.rejected_by_reason == {"gold_trajectory": 1, "no_reviews": 2}
    stats = result.summary.reviews
    assert stats is not None and stats.gold_trajectories == 1
    accuracy = {a.annotator_id: a.accuracy for a in stats.annotators}
    assert accuracy == {"ann1": 1.0, "ann2": 1.0, "ann3": 0.5}
    assert set(stats.per_review_pass) == {"1", "2"}
    t2b = result.rows.filter(pl.col("trajectory_id") == "T2-b").row(0, named=True)["annotation"]
    assert t2b["adjudicated"] is True and t2b["vendor"] == "acme-labels"
    # a stricter calibration excludes ann3; their (corrected) vote no longer counts
    strict = derive(frame, "labels", Rules(reviews=Reviews(min_gold_accuracy=0.75)), reviews)
    assert strict.summary.reviews is not None and strict.summary.reviews.excluded_annotators == ["ann3"]
    ids = strict.rows.filter(pl.col("trajectory_id") == "T1-ok").row(0, named=True)["annotation"]["annotator_ids"]
    assert ids == ["ann1", "ann2"]


def test_alpha_is_the_annotations_alpha_over_trajectory_steps() -> None:
    reviews = read_reviews(DATA / "step_reviews.jsonl")
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    stats = derive(frame, "labels", reviews=reviews).summary.reviews
    assert stats is not None
    raw = reviews.frame.filter(~pl.col("adjudicated"))
    latest = raw.sort("review_pass").group_by("trajectory_id", "step", "annotator_id").agg(pl.col("rating").last())
    votes = latest.select(pl.format("{}/{}", "trajectory_id", "step").alias("item_id"), pl.col("rating").cast(pl.String).alias("preference"))
    assert stats.agreement.alpha == round(agreement.alpha_nominal(votes), 6)


def test_draw_and_min_annotators_leave_steps_unlabelled(tmp_path: Path) -> None:
    frame = _runs(tmp_path, 1)
    rows = [
        {"annotator_id": "a", "trajectory_id": "run-0", "step": 3, "rating": 1},
        {"annotator_id": "b", "trajectory_id": "run-0", "step": 3, "rating": 1},
        {"annotator_id": "a", "trajectory_id": "run-0", "step": 4, "rating": 1},
        {"annotator_id": "b", "trajectory_id": "run-0", "step": 4, "rating": -1},
    ]
    reviews = read_reviews(_reviews(tmp_path, rows))
    result = derive(frame, "labels", reviews=reviews)
    assert result.rows.row(0, named=True)["labels"] == [True]  # the draw on step 4 ends the labelled part
    assert result.summary.reviews is not None and result.summary.reviews.unlabelled_steps_by_reason == {"rating_draw": 1}
    strict = derive(frame, "labels", Rules(reviews=Reviews(min_annotators=3)), reviews)
    assert strict.rows.height == 0 and strict.summary.rejected_by_reason == {"no_labelled_steps": 1}


def test_reviews_must_name_an_agent_step_of_a_known_run(tmp_path: Path) -> None:
    frame = _runs(tmp_path, 1)
    cases = [
        ({"trajectory_id": "nope", "step": 3}, "row 0: trajectory nope: step 3: no such trajectory, expected the id of a run in the trajectory files"),
        ({"trajectory_id": "run-0", "step": 40}, "row 0: trajectory run-0: step 40: no such step, expected 1..8"),
        ({"trajectory_id": "run-0", "step": 2}, "row 0: trajectory run-0: step 2: a user step, expected reviews of agent steps only"),
    ]
    for n, (where, message) in enumerate(cases):
        path = _reviews(tmp_path, [{"annotator_id": "a", "rating": 1, **where}], name=f"r{n}.parquet")
        with pytest.raises(InputError) as exc:
            derive(frame, "labels", reviews=read_reviews(path))
        assert str(exc.value) == f"{path}: {message}"
    path = _reviews(tmp_path, [{"annotator_id": "a", "trajectory_id": "run-0", "step": 3, "rating": 2}], name="bad.parquet")
    with pytest.raises(InputError, match=r"row 0, column 'rating': expected -1, 0 or 1, got 2"):
        read_reviews(path)


def _branches(tmp_path: Path) -> pl.DataFrame:
    """Four runs of one task from one prefix: after `look`, two try A (one resolves), two try B (none resolves)."""
    look = agent("Look.", ("c0", "bash", '{"cmd": "ls"}'), "a.py")
    try_a, try_b = agent("Try A.", ("c1", "bash", '{"cmd": "a"}'), "ok"), agent("Try B.", ("c1", "bash", '{"cmd": "b"}'), "ok")
    lines = [
        chat_run("T1", base() + [look, try_a, agent("Finish A1.")], True, "a1"),
        chat_run("T1", base() + [look, try_a, agent("Finish A2.")], False, "a2"),
        chat_run("T1", base() + [look, try_b, agent("Finish B1.")], False, "b1"),
        chat_run("T1", base() + [look, try_b, agent("Finish B2.")], False, "b2"),
    ]
    frame, _ = read_trajectories([write_jsonl(tmp_path / "branches.jsonl", lines)])
    return frame


def test_monte_carlo_hard_and_soft_labels_record_n(tmp_path: Path) -> None:
    frame = _branches(tmp_path)
    hard = derive(frame, "labels")
    by_id = {r["trajectory_id"]: r for r in hard.rows.to_dicts()}
    assert by_id["a2"]["rollouts"] == [4, 2, 1] and by_id["a2"]["soft_labels"] == [0.25, 0.5, 0.0]
    assert by_id["a2"]["labels"] == [True, True, False] and by_id["b1"]["labels"] == [True, False, False]
    assert by_id["a1"]["label_method"] == "mc_hard" and by_id["a1"]["source"] == "synthetic"
    soft = derive(frame, "labels", Rules(monte_carlo=MonteCarlo(estimate="soft", soft_threshold=0.5)))
    by_id = {r["trajectory_id"]: r for r in soft.rows.to_dicts()}
    assert by_id["a2"]["labels"] == [False, True, False] and by_id["a2"]["label_method"] == "mc_soft"
    few = derive(frame, "labels", Rules(monte_carlo=MonteCarlo(min_rollouts=2)))
    assert {r["trajectory_id"]: r["rollouts"] for r in few.rows.to_dicts()} == {"a1": [4, 2], "a2": [4, 2], "b1": [4, 2], "b2": [4, 2]}
