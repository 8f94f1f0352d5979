"""The trajectory judge: verdicts from a real (tiny) teacher, and judge-vs-human step agreement computed
exactly on hand-built verdicts and labels."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefmix.errors import InputError
from prefmix.generators.vllm_server import VLLMServerError, free_port
from prefmix.trajectories.derive import derive
from prefmix.trajectories.judge import (
    VERDICT_SCHEMA, cohen_kappa, judge_step_agreement, judge_trajectories, parse_verdict, rendered, verdict_schema,
)
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.reviews import read_reviews
from tests.trajectories.traj_helpers import agent, base, chat_run, write_jsonl


def _runs(tmp_path: Path) -> pl.DataFrame:
    lines = [
        chat_run("T1", [*base("T1"), agent("look", ("c1", "bash", '{"cmd": "ls"}'), "a.py"), agent("fix", ("c2", "bash", '{"cmd": "sed"}'), "ok"), agent("done")], True, "good"),
        chat_run("T1", [*base("T1"), agent("look", ("c1", "bash", '{"cmd": "ls"}'), "a.py"), agent("guess"), ], False, "bad"),
        chat_run("T2", [*base("T2"), agent("give up")], False, "short"),
    ]
    frame, _ = read_trajectories([write_jsonl(tmp_path / "runs.jsonl", lines)])
    return frame


def test_rendered_numbers_every_step_and_lists_agent_steps(tmp_path: Path) -> None:
    views = {r["trajectory_id"]: r for r in rendered(_runs(tmp_path)).to_dicts()}
    good = views["good"]
    assert good["agent_steps"] == [3, 4, 5]
    assert [line for line in good["text"].splitlines() if line.startswith("[step")] == [f"[step {i}]" for i in range(1, 6)]
    assert "<call bash>{\"cmd\": \"ls\"}" in good["text"] and "<tool>\na.py" in good["text"]  # calls and results shown
    assert views["short"]["agent_steps"] == [3]


def test_verdict_grammar_and_parse() -> None:
    schema = verdict_schema([3, 5])
    assert schema["properties"]["first_wrong_step"]["anyOf"][0]["enum"] == [3, 5]
    assert parse_verdict('{"score": 7, "first_wrong_step": 5}', [3, 5]) == (7, 5)
    assert parse_verdict('{"score": 10, "first_wrong_step": null}', [3, 5]) == (10, None)
    for bad in ('{"score": 0, "first_wrong_step": null}', '{"score": 7, "first_wrong_step": 4}', '{"score": true, "first_wrong_step": null}',
                '{"score": 7', '[7, 3]', '{"score": 7.5, "first_wrong_step": null}', '{"score": 7, "first_wrong_step": false}'):
        assert parse_verdict(bad, [3, 5]) is None, bad


@pytest.mark.vllm
def test_every_trajectory_gets_a_score_or_a_counted_parse_error(vllm_teacher, tmp_path: Path) -> None:
    frame = _runs(tmp_path)
    verdicts = judge_trajectories(frame, vllm_teacher.base_url, vllm_teacher.model_name, temperature=0.8, seed=1)
    assert verdicts.schema == pl.Schema(VERDICT_SCHEMA)
    assert verdicts.get_column("trajectory_id").to_list() == frame.get_column("trajectory_id").to_list()
    scored = verdicts.filter(pl.col("score").is_not_null())
    failed = verdicts.filter(pl.col("error").is_not_null())
    assert scored.height + failed.height == frame.height and scored.join(failed, on="trajectory_id").height == 0
    assert verdicts.get_column("parse_error").sum() == failed.filter(pl.col("error") == "unparseable").height
    assert scored.get_column("score").is_between(1, 10).all()
    agent_steps = {"good": {3, 4, 5}, "bad": {3, 4}, "short": {3}}
    for row in scored.iter_rows(named=True):  # the grammar lets the judge name only the run's own agent steps
        assert row["first_wrong_step"] is None or row["first_wrong_step"] in agent_steps[row["trajectory_id"]]


@pytest.mark.vllm
def test_judge_against_human_reviews_end_to_end(vllm_teacher, tmp_path: Path) -> None:
    """Human labels from a step-review file (first-error rule, derive 'labels'), verdicts from the teacher: the
    agreement counts every labelled step once."""
    frame = _runs(tmp_path)
    reviews = [{"annotator_id": "a1", "trajectory_id": "good", "step": s, "rating": 1} for s in (3, 4, 5)]
    reviews += [{"annotator_id": "a1", "trajectory_id": "bad", "step": 3, "rating": 1}, {"annotator_id": "a1", "trajectory_id": "bad", "step": 4, "rating": -1}]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reviews), encoding="utf-8")
    labels = derive(frame, "labels", reviews=read_reviews(path, vendor="acme")).rows
    verdicts = judge_trajectories(frame, vllm_teacher.base_url, vllm_teacher.model_name)
    figures = judge_step_agreement(verdicts, labels)
    assert figures.steps == 5 and figures.trajectories == 2
    assert figures.judged + figures.unjudged == 5 and figures.agree + figures.disagree == figures.judged


def test_unreachable_judge_is_one_infra_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(VLLMServerError, match="no request succeeded") as caught:
        judge_trajectories(_runs(tmp_path), url, "nobody")
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3


def _verdict(tid: str, score: int | None, step: int | None) -> dict:
    return {"trajectory_id": tid, "score": score, "first_wrong_step": step, "parse_error": score is None,
            "error": "unparseable" if score is None else None}


JUDGED = pl.DataFrame(
    [_verdict("t1", 6, 5), _verdict("t2", 8, None), _verdict("t3", 3, 4), _verdict("t4", None, None), _verdict("t5", 9, 6), _verdict("t6", 2, 3)],
    schema=VERDICT_SCHEMA,
)
HUMAN = pl.DataFrame(
    {
        "trajectory_id": ["t1", "t2", "t3", "t4", "t5"],
        "steps": [[3, 4, 5], [3, 4], [3, 4, 5], [3], [3, 4]],
        "labels": [[True, True, False], [True, False], [True, True, True], [False], [True, True]],
    },
    schema={"trajectory_id": pl.String, "steps": pl.List(pl.Int32), "labels": pl.List(pl.Boolean)},
)


def test_step_agreement_exact_on_a_fixed_frame() -> None:
    figures = judge_step_agreement(JUDGED, HUMAN)
    # per step (judge, human): t1 TT TT FF; t2 TT TF; t3 TT FT, step 5 after the judge's first error: unjudged;
    # t4 no verdict: unjudged; t5 TT TT (its first wrong step 6 is past what people labelled); t6 has no labels
    assert (figures.steps, figures.judged, figures.unjudged, figures.agree, figures.disagree) == (11, 9, 2, 7, 2)
    assert figures.share == round(7 / 9, 6)
    # 7 of 9 true on both sides: chance agreement (7/9)^2 + (2/9)^2 = 53/81; kappa = (63 - 53) / (81 - 53)
    assert figures.kappa == round(10 / 28, 6)
    # first error within the labelled steps: t1 5 = 5, t2 4 vs none, t3 none vs 4, t5 none = none
    assert (figures.trajectories, figures.trajectories_judged, figures.first_error_agree, figures.first_error_share) == (5, 4, 2, 0.5)
    assert figures.judge_parse_errors == 1


def test_step_agreement_edges() -> None:
    perfect = judge_step_agreement(JUDGED.filter(pl.col("trajectory_id") == "t1"), HUMAN)
    assert perfect.trajectories_judged == 1 and perfect.judged == 3 and perfect.kappa == 1.0
    constant = judge_step_agreement(JUDGED.filter(pl.col("trajectory_id") == "t5"), HUMAN.filter(pl.col("trajectory_id") == "t5"))
    assert constant.share == 1.0 and constant.kappa is None  # all labels true on both sides: kappa undefined
    nothing = judge_step_agreement(JUDGED.head(0), HUMAN)
    assert nothing.judged == 0 and nothing.unjudged == 11 and nothing.share is None and nothing.first_error_share is None
    assert cohen_kappa(pl.Series([True, False, True, False]), pl.Series([False, True, False, True])) == -1.0
    with pytest.raises(InputError, match="missing column 'labels'"):
        judge_step_agreement(JUDGED, HUMAN.drop("labels"))
