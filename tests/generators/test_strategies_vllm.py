"""Each strategy against the real vLLM server produces valid canonical records; counts reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from prefmix.records import SCHEMA, record_id
from prefmix.store import Store

from prefmix.generators.pairing import REASONS
from prefmix.generators.prompts import load_prompts
from prefmix.generators.run import GenerationRun, generate, judge_pairs
from tests.generators.helpers import config

pytestmark = pytest.mark.vllm


def check_run(run: GenerationRun, cfg, strategy: str) -> pl.DataFrame:
    """Everything a finished run must satisfy, whatever the strategy."""
    s = run.summary.model_dump()
    assert s["prompts_in"] == s["records"] + sum(s["rejections"].values())
    assert set(s["rejections"]) <= set(REASONS)
    for f in run.record_files:
        assert pq.read_schema(f).equals(SCHEMA, check_metadata=False)
    records = pl.read_parquet(run.record_files)
    rejections = pl.read_parquet(run.rejection_files)
    assert records.height == s["records"] and rejections.height == sum(s["rejections"].values())
    # every prompt exactly once, as a record or a rejection
    prompts = load_prompts(cfg)
    seen = pl.concat([records.select("origin_uri", "origin_row"), rejections.select("origin_uri", "origin_row")])
    assert seen.height == prompts.height and seen.is_unique().all()
    assert sorted(seen["origin_row"].to_list()) == list(range(prompts.height))
    # record content
    assert records["record_id"].is_unique().all()
    for row in records.iter_rows(named=True):
        assert row["record_id"] == record_id(row["prompt"], row["chosen"], row["rejected"])
        assert row["chosen"].strip() and row["rejected"].strip() and row["chosen"] != row["rejected"]
        assert row["source"] == "synthetic" and row["origin_sha256"] == prompts["origin_sha256"][0]
        assert prompts["prompt"][row["origin_row"]] == row["prompt"]
        g = row["generation"]
        assert g["strategy"] == strategy and g["run_id"] == run.run_id and g["teacher"] == "tiny"
        assert g["teacher_models"] == ["tiny-teacher", "tiny-teacher"] and g["judge"] == "tiny"
        assert g["template_id"] == run.lineage.template.id and len(g["template_sha256"]) == 64
        assert json.loads(g["sampling"])["max_tokens"] == 16
        assert g["prompt_tokens"] > 0 and g["completion_tokens"] > 0
        assert g["vllm_version"] and g["vllm_version"] != "unknown"
    assert json.loads((Path(run.run_dir) / "summary.json").read_text())["summary"] == s
    return records


def test_pointwise(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 24, strategy="pointwise", min_margin=1.0)
    run = generate(cfg, Store.at(cfg.store), "pw")
    records = check_run(run, cfg, "pointwise")
    assert records.height > 0
    assert (records["chosen_score"] - records["rejected_score"] >= 1.0).all()
    assert records["chosen_score"].is_between(1, 10).all() and records["rejected_score"].is_between(1, 10).all()
    assert run.summary.requests_sent >= 24 * 2  # two answers per prompt, then the judge
    assert run.lineage.judge.model_dump() == {"name": "tiny", "model": "tiny-teacher", "revision": None}
    assert run.lineage.constitution is None and run.lineage.vllm_version == vllm_teacher.vllm_version


def test_pairwise(vllm_teacher, tmp_path: Path) -> None:
    # the tiny judge is noise, so most pairs end inconsistent: enough prompts that some agree
    cfg = config(tmp_path, vllm_teacher.base_url, 120, strategy="pairwise", judge_max_tokens=24, chunk_size=40)
    run = generate(cfg, Store.at(cfg.store), "pair")
    records = check_run(run, cfg, "pairwise")
    assert records.height > 0
    assert run.summary.rejections.get("judge_inconsistent", 0) > 0
    assert records["chosen_score"].is_null().all()


def test_constitutional(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 16, strategy="constitutional")
    run = generate(cfg, Store.at(cfg.store), "cai")
    records = check_run(run, cfg, "constitutional")
    assert records.height > 0
    gen = records["generation"].struct.unnest()
    assert gen["constitution_id"].unique().to_list() == ["prefmix-default@1"]
    assert run.lineage.constitution.id == "prefmix-default@1"
    principles = gen["principle_id"].to_list()
    assert None not in principles and len(set(principles)) > 1
    # the draw is seeded per prompt: a second run draws the same principle for each prompt
    again = pl.read_parquet(generate(cfg, Store.at(cfg.store), "cai-2").record_files)
    both = records.select("origin_row", p1=gen["principle_id"]).join(
        again.select("origin_row", p2=again["generation"].struct.field("principle_id")), on="origin_row")
    assert both.height > 0 and (both["p1"] == both["p2"]).all()


def test_multiple_teachers_and_samples(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 10, samples_per_prompt=2, min_margin=0.0)
    cfg.teachers.append(cfg.teachers[0].model_copy(update={"name": "tiny-b"}))
    run = generate(cfg, Store.at(cfg.store), "multi")
    check_run_teachers = pl.read_parquet(run.record_files)["generation"].struct.field("teacher").unique().to_list()
    assert set(check_run_teachers) <= {"tiny", "tiny-b"}
    assert run.summary.requests_sent >= 10 * 4
    assert [t.name for t in run.lineage.teachers] == ["tiny", "tiny-b"]


def test_resume_of_a_finished_run_sends_nothing(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 10)
    first = generate(cfg, Store.at(cfg.store), "r")
    before = {f: Path(f).read_bytes() for f in first.record_files}
    second = generate(cfg, Store.at(cfg.store), "r")
    assert second.summary.model_dump() == first.summary.model_dump() | {"elapsed_s": second.summary.elapsed_s}
    assert {f: Path(f).read_bytes() for f in second.record_files} == before


@pytest.mark.parametrize("strategy", ["pointwise", "pairwise"])
def test_judge_pairs(vllm_teacher, tmp_path: Path, strategy: str) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 4, strategy=strategy)
    pairs = pl.DataFrame({
        "record_id": [f"r{i}" for i in range(6)],
        "prompt": [f"Question {i}?" for i in range(6)],
        "chosen": ["A clear and correct answer."] * 6,
        "rejected": ["no"] * 5 + ["A clear and correct answer."],
    })
    verdicts = judge_pairs(cfg, pairs)
    assert verdicts.columns == ["record_id", "judge_prefers"]
    assert verdicts["record_id"].to_list() == pairs["record_id"].to_list()
    assert set(verdicts["judge_prefers"].to_list()) <= {"chosen", "rejected", None}
    assert verdicts["judge_prefers"][5] is None  # identical texts: no preference


def test_over_length_prompts_are_rejected_with_reason(vllm_teacher, tmp_path: Path) -> None:
    cfg = config(tmp_path, vllm_teacher.base_url, 3, max_prompt_chars=5000)
    long_for_server = " ".join(f"word{i}" for i in range(600))  # < 5000 chars but > the server's 1024 tokens
    long_for_us = "x " * 3000
    pl.DataFrame({"prompt": ["What is a bond?", long_for_server, long_for_us], "domain": ["finance"] * 3}).write_parquet(
        tmp_path / "prompts.parquet")
    run = generate(cfg, Store.at(cfg.store), "long")
    rej = pl.read_parquet(run.rejection_files).sort("origin_row")
    assert rej.filter(pl.col("origin_row") >= 1)["reason"].to_list() == ["over_length", "over_length"]
    details = rej.filter(pl.col("origin_row") >= 1)["detail"].to_list()
    assert "maximum context length" in details[0] and "max_prompt_chars=5000" in details[1]
    assert run.summary.prompts_in == 3 == run.summary.records + sum(run.summary.rejections.values())
