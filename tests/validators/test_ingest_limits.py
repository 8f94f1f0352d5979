"""Ingest length limits (human.limits): a prompt or response over the limit is a counted rejection with its
reason in every layout, never an accepted pair and never an error; the accounting still reconciles
(items_in == items_with_pairs + items_rejected)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from prefmix.annotations.ingest import ingest, ingest_shards
from prefmix.config import Aggregation, Config, HumanShard, Limits

DOMAINS = ["general", "finance", "medicine", "law"]
POLICY = Aggregation(min_annotators=1, min_agreement=0.0)


def _reconciled(result) -> None:  # type: ignore[no-untyped-def]
    for shard in result.stats["shards"]:
        assert shard["items_in"] == shard["items_with_pairs"] + shard["items_rejected"] and shard["reconciled"]
    assert result.stats["totals"]["reconciled"]


def test_a_50_mb_response_in_a_vendor_shard_is_a_counted_rejection(tmp_path: Path) -> None:
    huge = "x" * 50_000_000
    path = tmp_path / "pairs.parquet"
    pl.DataFrame({
        "prompt": ["What is a bond?", "What is a lease?", "Explain risk."],
        "chosen": ["A loan to an issuer.", huge, "Chance of loss."],
        "rejected": ["A stock.", "A car.", "Nothing."],
        "domain": ["finance", "law", "finance"],
    }).write_parquet(path)
    config = Config(human={"shards": [{"path": str(path), "layout": "pairs", "vendor": "acme"}]})
    result = ingest(config)  # the default limit (100,000 characters) applies
    assert result.records["prompt"].to_list() == ["What is a bond?", "Explain risk."]
    assert result.rejections.select("origin_row", "reason").rows() == [(1, "response_too_long")]
    assert result.stats["totals"]["rejected_by_reason"] == {"response_too_long": 1}
    _reconciled(result)


def test_pairs_prompt_before_response(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    pl.DataFrame({
        "prompt": ["p" * 60, "ok prompt", "another prompt", "fine"],
        "chosen": ["good", "g" * 60, "good", "good answer"],
        "rejected": ["bad", "bad", "b" * 60, "bad answer"],
        "domain": ["general"] * 4,
    }).write_parquet(path)
    limits = Limits(max_prompt_chars=50, max_response_chars=50)
    result = ingest_shards([HumanShard(path=str(path), layout="pairs")], DOMAINS, POLICY, limits)
    assert result.records["prompt"].to_list() == ["fine"]
    assert result.rejections.select("origin_row", "reason").rows() == [
        (0, "prompt_too_long"), (1, "response_too_long"), (2, "response_too_long")]
    _reconciled(result)


def test_judgments_reject_the_whole_item_and_its_votes(tmp_path: Path) -> None:
    path = tmp_path / "judgments.parquet"
    pl.DataFrame({
        "item_id": ["i1", "i1", "i2", "i2"],
        "prompt": ["Explain APR.", "Explain APR.", "Explain wills.", "Explain wills."],
        "domain": ["finance", "finance", "law", "law"],
        "response_a": ["a" * 80] * 2 + ["A will names heirs."] * 2,
        "response_b": ["APR is a yearly rate."] * 2 + ["A will is a car."] * 2,
        "annotator_id": ["u1", "u2", "u1", "u2"],
        "preference": ["a", "a", "a", "a"],
    }).write_parquet(path)
    result = ingest_shards([HumanShard(path=str(path), layout="judgments")], DOMAINS, POLICY, Limits(max_response_chars=50))
    assert result.records["prompt"].to_list() == ["Explain wills."]
    assert result.rejections.select("item_id", "origin_row", "reason").rows() == [("i1", 0, "response_too_long")]
    _reconciled(result)


def test_rankings_reject_an_item_with_one_long_response(tmp_path: Path) -> None:
    path = tmp_path / "rankings.parquet"
    pl.DataFrame({
        "item_id": ["r1", "r2"],
        "prompt": ["Explain index funds.", "Explain bonds."],
        "domain": ["finance", "finance"],
        "responses": [["short one", "r" * 80, "short three"], ["Bonds pay interest.", "Bonds are pets."]],
        "rankings": [[[0, 1, 2]], [[0, 1]]],
    }).write_parquet(path)
    result = ingest_shards([HumanShard(path=str(path), layout="rankings")], DOMAINS, POLICY, Limits(max_response_chars=50))
    assert result.records["prompt"].to_list() == ["Explain bonds."]
    assert result.rejections.select("item_id", "reason").rows() == [("r1", "response_too_long")]
    _reconciled(result)


def test_limits_count_characters_not_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    pl.DataFrame({"prompt": ["é" * 40], "chosen": ["ü" * 40], "rejected": ["no"], "domain": ["general"]}).write_parquet(path)
    limits = Limits(max_prompt_chars=40, max_response_chars=40)  # 80 bytes each, 40 characters: allowed
    result = ingest_shards([HumanShard(path=str(path), layout="pairs")], DOMAINS, POLICY, limits)
    assert result.records.height == 1 and result.rejections.height == 0
