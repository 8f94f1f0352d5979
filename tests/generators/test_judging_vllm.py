"""Finish reasons, the truncation rule, expected scores and several judges, against the real (tiny) vLLM server."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from prefmix.store import Store

from prefmix.generators.run import generate
from tests.generators.helpers import config

pytestmark = pytest.mark.vllm


def test_finish_reasons_and_expected_scores_are_recorded(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 16, min_margin=1.0)
    run = generate(cfg, Store.at(cfg.store), "fr")
    gen = pl.read_parquet(run.record_files)["generation"].struct.unnest()
    assert gen.height > 0
    # [chosen, rejected]; the tiny teacher rarely stops on its own, so nearly all are "length" (kept: truncated: keep)
    reasons = gen["finish_reasons"].to_list()
    assert all(len(r) == 2 and set(r) <= {"stop", "length"} for r in reasons) and ["length", "length"] in reasons
    # the judge's probabilities over the score tokens (vLLM logprobs under the JSON grammar)
    assert gen["chosen_expected"].is_between(1, 10).all() and gen["rejected_expected"].is_between(1, 10).all()
    votes = gen["judge_votes"].to_list()
    assert all(len(v) == 1 and v[0]["judge"] == "tiny" and v[0]["order"] == "ab" for v in votes)
    assert all(v[0]["winner"] == "chosen" for v in votes)  # the primary judge's own reading is the decision


def test_truncated_candidates_never_become_chosen_by_default(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 24, truncated="reject", min_margin=0.0)
    run = generate(cfg, Store.at(cfg.store), "cut")
    s = run.summary
    assert s.prompts_in == 24 == s.records + sum(s.rejections.values())
    # the tiny teacher's answers stop at max_tokens: those prompts end under their own reason
    assert s.rejections.get("truncated", 0) > 12
    records = pl.read_parquet(run.record_files)
    if records.height:
        assert [r[0] for r in records["generation"].struct.field("finish_reasons").to_list()] == ["stop"] * records.height
    rejections = pl.read_parquet(run.rejection_files).filter(pl.col("reason") == "truncated")
    # the detail names the cause: every answer cut, the judge's choice cut, or a cut candidate ranked first
    assert rejections["detail"].str.contains("max_tokens").all()
    # a prompt whose every answer was cut costs no judge request
    assert s.requests_sent < 24 * 4


def test_integer_ties_broken_by_expected_scores_are_counted(vllm_teacher, tmp_path: Path) -> None:
    # seeded answers and a greedy judge: both runs get the same replies, only the pairing rule differs
    same = {"min_margin": 1.0, "judge_temperature": 0.0, "sampling": {"max_tokens": 16, "seed": 5}}
    (tmp_path / "on").mkdir(), (tmp_path / "off").mkdir()
    on = config(tmp_path / "on", vllm_teacher.base_url, 24, expected_margin=0.0, **same)
    off = config(tmp_path / "off", vllm_teacher.base_url, 24, tie_break="none", **same)
    with_tb, without = generate(on, Store.at(on.store), "tb"), generate(off, Store.at(off.store), "no-tb")
    records = pl.read_parquet(with_tb.record_files)
    broken = records.filter(pl.col("chosen_score") == pl.col("rejected_score"))
    gen = broken["generation"].struct.unnest()
    assert (gen["chosen_expected"] > gen["rejected_expected"]).all()
    assert with_tb.summary.expected_tie_breaks == broken.height
    # the same judge replies without tie-breaking: exactly the integer-decided pairs
    assert without.summary.records == with_tb.summary.records - broken.height
    assert without.summary.rejections.get("tie", 0) == with_tb.summary.rejections.get("tie", 0) + broken.height
    s = with_tb.summary
    assert s.tokens_per_pair == round((s.prompt_tokens + s.completion_tokens) / s.records, 1)
    assert s.tokens_per_pair_integer == round((s.prompt_tokens + s.completion_tokens) / (s.records - broken.height), 1)


@pytest.mark.parametrize("strategy", ["pointwise", "pairwise"])
def test_every_judge_reading_is_a_vote(vllm_teacher, tmp_path: Path, strategy: str) -> None:
    # three judge names on one server: the primary decides, the others read the decided pair
    cfg = config(tmp_path, vllm_teacher.base_url, 60 if strategy == "pairwise" else 16, strategy=strategy, min_margin=0.0,
                 judge_max_tokens=24)
    for name in ("judge-b", "judge-c"):
        cfg.teachers.append(cfg.teachers[0].model_copy(update={"name": name}))
    cfg.generation.teachers = ["tiny"]
    cfg.generation.judges = ["tiny", "judge-b", "judge-c"]
    run = generate(cfg, Store.at(cfg.store), f"judges-{strategy}")
    assert [j.name for j in run.lineage.judges] == ["tiny", "judge-b", "judge-c"] and run.lineage.judge.name == "tiny"
    records = pl.read_parquet(run.record_files)
    assert records.height > 0
    orders = ["ab"] if strategy == "pointwise" else ["ab", "ba"]
    for row in records.iter_rows(named=True):
        votes = row["generation"]["judge_votes"]
        assert [(v["judge"], v["order"]) for v in votes] == [(j, o) for j in ("tiny", "judge-b", "judge-c") for o in orders]
        assert {v["winner"] for v in votes} <= {"chosen", "rejected", "tie", None}
        primary = [v for v in votes if v["judge"] == "tiny"]
        assert all(v["winner"] == "chosen" for v in primary)  # the primary's readings decided the pair
        if strategy == "pointwise":
            assert primary[0]["chosen_score"] == row["chosen_score"] and primary[0]["rejected_score"] == row["rejected_score"]
        else:
            assert all(v["chosen_score"] is None for v in votes)
