"""Rankings -> pairs (best/worst, all pairs with a cap) and the pairs layout with a vendor column mapping.

Ranking item r1 (responses R0..R3; rankings best first [2,0,1,3], [2,1,0,3], [0,2,1,3]):
mean positions R0 = 1, R1 = 5/3, R2 = 1/3, R3 = 3, so best = R2, worst = R3.
All pairs by gap: (R2,R3) 8/3, (R0,R3) 2, then (R1,R3) and (R2,R1) at 4/3, then
(R2,R0) and (R0,R1) at 2/3; share of rankings agreeing: (R2,R0) 2/3, (R0,R1) 2/3, others 1.
Item r2 ([0,1], [1,0]) is a tie; item r3 has a single ranking (< min_annotators 2).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from prefmix.annotations.ingest import ingest_shards
from prefmix.config import Aggregation, HumanShard

DOMAINS = ["general", "finance", "medicine", "law"]
R = [f"Response R{i} with its own distinct wording." for i in range(4)]


@pytest.fixture()
def rankings(tmp_path: Path) -> HumanShard:
    frame = pl.DataFrame(
        {
            "item_id": ["r1", "r2", "r3"],
            "prompt": ["Explain index funds.", "Explain bonds.", "Explain wills."],
            "domain": ["finance", "finance", "law"],
            "responses": [R, ["Short X.", "Short Y."], ["Will answer one.", "Will answer two."]],
            "rankings": [[[2, 0, 1, 3], [2, 1, 0, 3], [0, 2, 1, 3]], [[0, 1], [1, 0]], [[1, 0]]],
            "annotator_ids": [["u1", "u2", "u3"], ["u1", "u2"], ["u4"]],
        }
    )
    path = tmp_path / "rankings.parquet"
    frame.write_parquet(path)
    return HumanShard(path=str(path), layout="rankings", vendor="rankco")


def _pairs(records: pl.DataFrame) -> list[tuple[int, int]]:
    return [(R.index(c), R.index(r)) for c, r in zip(records["chosen"], records["rejected"])]


def test_best_against_worst(rankings: HumanShard) -> None:
    result = ingest_shards([rankings], DOMAINS, Aggregation(min_annotators=2, ranking_pairs="best_worst"))
    assert _pairs(result.records) == [(2, 3)]
    row = result.records.to_dicts()[0]
    assert row["annotation"]["annotator_count"] == 3 and row["annotation"]["agreement"] == 1.0
    assert row["annotation"]["annotator_ids"] == ["u1", "u2", "u3"]
    assert dict(zip(result.rejections["item_id"], result.rejections["reason"])) == {"r2": "tie", "r3": "too_few_annotators"}
    shard = result.stats["shards"][0]
    assert (shard["items_in"], shard["items_with_pairs"], shard["items_rejected"], shard["reconciled"]) == (3, 1, 2, True)


def test_all_pairs_ordered_by_gap(rankings: HumanShard) -> None:
    result = ingest_shards([rankings], DOMAINS, Aggregation(min_annotators=2, ranking_pairs="all", max_pairs_per_ranking=10))
    assert _pairs(result.records) == [(2, 3), (0, 3), (1, 3), (2, 1), (0, 1), (2, 0)]
    agreement = dict(zip(_pairs(result.records), result.records["annotation"].struct.field("agreement")))
    assert agreement[(2, 0)] == pytest.approx(2 / 3) and agreement[(0, 1)] == pytest.approx(2 / 3)
    assert agreement[(2, 1)] == 1.0


def test_all_pairs_cap(rankings: HumanShard) -> None:
    result = ingest_shards([rankings], DOMAINS, Aggregation(min_annotators=2, ranking_pairs="all", max_pairs_per_ranking=2))
    assert _pairs(result.records) == [(2, 3), (0, 3)]
    assert result.stats["shards"][0]["pairs_cut_by_cap"] == 4
    assert result.stats["totals"]["reconciled"]


def test_all_pairs_min_agreement_drops_split_pairs(rankings: HumanShard) -> None:
    result = ingest_shards([rankings], DOMAINS, Aggregation(min_annotators=2, min_agreement=0.9, ranking_pairs="all"))
    assert _pairs(result.records) == [(2, 3), (0, 3), (1, 3), (2, 1)]
    assert result.stats["shards"][0]["candidate_pairs_dropped"] == {"low_agreement": 2, "too_few_annotators": 1}


def test_pairs_layout_with_vendor_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "question": ["Q one?", "Q two?", "Q three?", "Q four?"],
            "better": ["A precise, sourced answer.", "Same  text.", "A careful answer.", "Good answer."],
            "worse": ["Meh.", "Same text.", "Bad.", "Bad answer."],
            "topic": ["medicine", "law", "general", "general"],
            "raters": [["x", "y"], ["x", "y"], ["x", "y", "z"], ["x"]],
            "consensus": [1.0, 1.0, 0.34, 1.0],
        }
    )
    path = tmp_path / "vendor_pairs.parquet"
    frame.write_parquet(path)
    columns = {"prompt": "question", "chosen": "better", "rejected": "worse", "domain": "topic", "annotator_ids": "raters", "agreement": "consensus"}
    shard = HumanShard(path=str(path), layout="pairs", vendor="v", columns=columns)
    result = ingest_shards([shard], DOMAINS, Aggregation(min_annotators=2, min_agreement=0.5))
    assert result.records["prompt"].to_list() == ["Q one?"]
    assert result.records["annotation"].to_list()[0] == {
        "vendor": "v", "annotator_ids": ["x", "y"], "annotator_count": 2, "agreement": 1.0, "review_passes": None, "adjudicated": False,
    }
    assert dict(zip(result.rejections["origin_row"], result.rejections["reason"])) == {
        1: "identical_responses", 2: "low_agreement", 3: "too_few_annotators",
    }
