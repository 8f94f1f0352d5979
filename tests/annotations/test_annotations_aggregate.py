"""Majority vote, adjudication, review passes and gold exclusion on a hand-made judgment table.

Expected outcomes were worked out by hand from the table below (policy:
min_annotators 3, min_agreement 0.6, min_gold_accuracy 0.75):

  g1, g2  gold items (answers a, b): ann1-ann4 right on both, `bad` wrong on both
          -> bad has accuracy 0.0 and is excluded; gold items give no pair
  i1  a a b                  -> a, agreement 2/3
  i2  b b b + bad:a          -> b, 3/3 (bad's vote not counted)
  i3  a b tie                -> draw for top -> tie
  i4  a a                    -> too_few_annotators (2 < 3)
  i5  a a b b, adjudicated b -> b (adjudication overrides the draw), agreement 2/4
  i6  a b a tie              -> a with 2/4 = 0.5 < 0.6 -> low_agreement
  i7  pass 1: b b a; pass 2: ann1 a, ann2 a -> latest answers a a a -> a, 3/3, 2 passes
  i8  bad:a ann1:a ann2:a    -> only 2 counted -> too_few_annotators
  i9  a b a, adjudicated tie -> adjudicated_tie
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefmix.annotations.ingest import ingest_shards
from prefmix.config import Aggregation, HumanShard
from prefmix.records import SCHEMA, record_id, to_arrow
from prefmix.store import sha256_file
from tests.annotations.helpers import JUDGMENT_TYPES, judgment_rows, write

DOMAINS = ["general", "finance", "medicine", "law"]
TABLE = [
    ("g1", "ann1", "a", 1, True, "a", None), ("g1", "ann2", "a", 1, True, "a", None), ("g1", "ann3", "a", 1, True, "a", None),
    ("g1", "ann4", "a", 1, True, "a", None), ("g1", "bad", "b", 1, True, "a", None),
    ("g2", "ann1", "b", 1, True, "b", None), ("g2", "ann2", "b", 1, True, "b", None), ("g2", "ann3", "b", 1, True, "b", None),
    ("g2", "ann4", "b", 1, True, "b", None), ("g2", "bad", "tie", 1, True, "b", None),
    ("i1", "ann1", "a", 1, False, None, None), ("i1", "ann2", "a", 1, False, None, None), ("i1", "ann3", "b", 1, False, None, None),
    ("i2", "ann1", "b", 1, False, None, None), ("i2", "ann2", "b", 1, False, None, None), ("i2", "ann3", "b", 1, False, None, None),
    ("i2", "bad", "a", 1, False, None, None),
    ("i3", "ann1", "a", 1, False, None, None), ("i3", "ann2", "b", 1, False, None, None), ("i3", "ann3", "tie", 1, False, None, None),
    ("i4", "ann1", "a", 1, False, None, None), ("i4", "ann2", "a", 1, False, None, None),
    ("i5", "ann1", "a", 1, False, None, None), ("i5", "ann2", "a", 1, False, None, None), ("i5", "ann3", "b", 1, False, None, None),
    ("i5", "ann4", "b", 1, False, None, "b"),
    ("i6", "ann1", "a", 1, False, None, None), ("i6", "ann2", "b", 1, False, None, None), ("i6", "ann3", "a", 1, False, None, None),
    ("i6", "ann4", "tie", 1, False, None, None),
    ("i7", "ann1", "b", 1, False, None, None), ("i7", "ann2", "b", 1, False, None, None), ("i7", "ann3", "a", 1, False, None, None),
    ("i8", "bad", "a", 1, False, None, None), ("i8", "ann1", "a", 1, False, None, None), ("i8", "ann2", "a", 1, False, None, None),
    ("i9", "ann1", "a", 1, False, None, None), ("i9", "ann2", "b", 1, False, None, "tie"), ("i9", "ann3", "a", 1, False, None, None),
    ("i7", "ann1", "a", 2, False, None, None), ("i7", "ann2", "a", 2, False, None, None),
]
POLICY = Aggregation(min_annotators=3, min_agreement=0.6, min_gold_accuracy=0.75)


@pytest.fixture()
def shard(tmp_path: Path) -> HumanShard:
    path = write(judgment_rows(TABLE), tmp_path / "judgments.parquet", JUDGMENT_TYPES)
    return HumanShard(path=str(path), layout="judgments", vendor="handmade")


def _by_item(records: pl.DataFrame) -> dict[str, dict]:
    return {row["prompt"].removeprefix("How do I ").removesuffix("?"): row for row in records.to_dicts()}


def test_majority_adjudication_and_reasons(shard: HumanShard) -> None:
    result = ingest_shards([shard], DOMAINS, POLICY)
    got = _by_item(result.records)
    assert sorted(got) == ["i1", "i2", "i5", "i7"]
    winners = {item: ("a" if row["chosen"].startswith("Detailed answer A") else "b") for item, row in got.items()}
    assert winners == {"i1": "a", "i2": "b", "i5": "b", "i7": "a"}
    assert got["i1"]["annotation"]["agreement"] == pytest.approx(2 / 3)
    assert (got["i1"]["chosen_score"], got["i1"]["rejected_score"]) == (pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert got["i2"]["annotation"]["annotator_ids"] == ["ann1", "ann2", "ann3"]
    assert got["i2"]["annotation"]["annotator_count"] == 3
    assert got["i5"]["annotation"]["adjudicated"] is True
    assert got["i5"]["annotation"]["agreement"] == pytest.approx(0.5)
    assert got["i1"]["annotation"]["adjudicated"] is False
    assert got["i7"]["annotation"]["review_passes"] == 2
    assert got["i7"]["annotation"]["agreement"] == pytest.approx(1.0)
    reasons = dict(zip(result.rejections["item_id"].to_list(), result.rejections["reason"].to_list()))
    assert reasons == {
        "g1": "gold_item", "g2": "gold_item", "i3": "tie", "i4": "too_few_annotators",
        "i6": "low_agreement", "i8": "too_few_annotators", "i9": "adjudicated_tie",
    }
    totals = result.stats["totals"]
    assert (totals["items_in"], totals["pairs_out"], totals["items_rejected"], totals["reconciled"]) == (11, 4, 7, True)
    json.dumps(result.stats)  # json-able


def test_lineage_on_every_record(shard: HumanShard) -> None:
    result = ingest_shards([shard], DOMAINS, POLICY)
    table = to_arrow(result.records)
    assert table.schema == SCHEMA
    first_rows = pl.read_parquet(shard.path).with_row_index("row").group_by("item_id").agg(pl.col("row").min())
    first = dict(zip(first_rows["item_id"].to_list(), first_rows["row"].to_list()))
    digest = sha256_file(shard.path)
    for item, row in _by_item(result.records).items():
        assert row["record_id"] == record_id(row["prompt"], row["chosen"], row["rejected"])
        assert (row["source"], row["origin_uri"], row["origin_sha256"]) == ("human", shard.path, digest)
        assert row["origin_row"] == first[item]
        assert row["annotation"]["vendor"] == "handmade"
    rejected = dict(zip(result.rejections["item_id"].to_list(), result.rejections["origin_row"].to_list()))
    assert all(rejected[item] == first[item] for item in rejected)


def test_weak_annotator_excluded_before_aggregation(shard: HumanShard) -> None:
    result = ingest_shards([shard], DOMAINS, POLICY)
    stats = result.stats["shards"][0]
    accuracy = {a["annotator_id"]: (a["n_gold"], a["correct"], a["accuracy"], a["excluded"]) for a in stats["annotators"]}
    assert accuracy == {
        "ann1": (2, 2, 1.0, False), "ann2": (2, 2, 1.0, False), "ann3": (2, 2, 1.0, False),
        "ann4": (2, 2, 1.0, False), "bad": (2, 0, 0.0, True),
    }
    assert stats["excluded_annotators"] == ["bad"]
    assert [e["annotator_id"] for e in result.stats["excluded_annotators"]] == ["bad"]
    assert all("bad" not in ids for ids in result.records["annotation"].struct.field("annotator_ids").to_list())


def test_without_exclusion_the_weak_vote_counts(shard: HumanShard) -> None:
    """Same table, no gold threshold: i8 now has 3 annotators and i2 keeps b with 3/4."""
    result = ingest_shards([shard], DOMAINS, POLICY.model_copy(update={"min_gold_accuracy": 0.0}))
    got = _by_item(result.records)
    assert sorted(got) == ["i1", "i2", "i5", "i7", "i8"]
    assert got["i2"]["annotation"]["agreement"] == pytest.approx(0.75)
    assert "bad" in got["i8"]["annotation"]["annotator_ids"]
    assert result.stats["excluded_annotators"] == []


def test_review_pass_agreement_is_cumulative(shard: HumanShard) -> None:
    """After pass 2 the i7 panel agrees (a a a) where after pass 1 it split (b b a)."""
    passes = ingest_shards([shard], DOMAINS, POLICY).stats["shards"][0]["per_review_pass"]
    assert sorted(passes) == ["1", "2"]
    assert passes["2"]["judgments_in_pass"] == 2
    assert passes["2"]["percent_agreement"] > passes["1"]["percent_agreement"]


def test_pandas_style_types_are_accepted(tmp_path: Path) -> None:
    """Integral floats for review_pass and 0/1 integers for is_gold (what pandas exports) read as int and bool."""
    rows = judgment_rows(TABLE)
    for row in rows:
        row["review_pass"] = float(row["review_pass"])
        row["is_gold"] = int(row["is_gold"])
    path = write(rows, tmp_path / "pandas.parquet", {"gold_answer": pl.String, "adjudicated_label": pl.String})
    result = ingest_shards([HumanShard(path=str(path), layout="judgments")], DOMAINS, POLICY)
    assert sorted(_by_item(result.records)) == ["i1", "i2", "i5", "i7"]


def test_item_with_only_excluded_annotators(tmp_path: Path) -> None:
    rows = judgment_rows(TABLE + [("i0", "bad", "a", 1, False, None, None)])
    path = write(rows, tmp_path / "j.parquet", JUDGMENT_TYPES)
    result = ingest_shards([HumanShard(path=str(path), layout="judgments")], DOMAINS, POLICY)
    reasons = dict(zip(result.rejections["item_id"].to_list(), result.rejections["reason"].to_list()))
    assert reasons["i0"] == "no_counted_annotators"
    assert result.stats["totals"]["reconciled"]


def test_latest_pass_then_last_row_wins(tmp_path: Path) -> None:
    """x1: ann1 says a in pass 2 but b in a later pass-1 row -> pass 2 wins; ann2 repeats pass 1 (a, then b) -> last row, b.
    Counted: ann1 a, ann2 b, ann3 a -> a with 2/3."""
    table = [
        ("x1", "ann1", "a", 2, False, None, None), ("x1", "ann1", "b", 1, False, None, None),
        ("x1", "ann2", "a", 1, False, None, None), ("x1", "ann2", "b", 1, False, None, None),
        ("x1", "ann3", "a", 1, False, None, None),
    ]
    path = write(judgment_rows(table), tmp_path / "j.parquet", JUDGMENT_TYPES)
    result = ingest_shards([HumanShard(path=str(path), layout="judgments")], DOMAINS, Aggregation(min_annotators=3, min_agreement=0.6))
    row = result.records.to_dicts()[0]
    assert row["chosen"].startswith("Detailed answer A")
    assert row["annotation"]["agreement"] == pytest.approx(2 / 3) and row["annotation"]["review_passes"] == 2
    assert row["origin_row"] == 0
