"""Judge-versus-human agreement and the seeded calibration sample."""

from __future__ import annotations

import polars as pl
import pytest

from prefmix.annotations.calibration import judge_human_agreement, sample_for_calibration
from prefmix.errors import InputError

PAIRS = pl.DataFrame(
    {
        "record_id": [f"r{i}" for i in range(10)],
        "domain": ["law"] * 6 + ["medicine"] * 4,
        "prompt": [f"p{i}" for i in range(10)],
    }
)


def test_share_overall_and_per_domain() -> None:
    """law: r0 chosen, r1 chosen, r2 rejected, r3 None -> 2/3; medicine: r6 chosen, r7 rejected -> 1/2; overall 3/5."""
    verdicts = pl.DataFrame(
        {
            "record_id": ["r0", "r1", "r2", "r3", "r6", "r7", "zz"],
            "judge_prefers": ["chosen", "chosen", "rejected", None, "chosen", "rejected", "chosen"],
        }
    )
    result = judge_human_agreement(PAIRS, verdicts).model_dump()
    assert {k: result[k] for k in ("pairs", "judged", "unjudged", "agree", "disagree", "share", "unknown_record_ids")} == {
        "pairs": 6, "judged": 5, "unjudged": 1, "agree": 3, "disagree": 2, "share": 0.6, "unknown_record_ids": 1,
    }
    assert result["per_domain"]["law"] == {"pairs": 4, "judged": 3, "unjudged": 1, "agree": 2, "disagree": 1, "share": pytest.approx(2 / 3, abs=1e-6)}
    assert result["per_domain"]["medicine"]["share"] == 0.5
    assert result["agreement"] == result["share"]


def test_all_unjudged_gives_no_share() -> None:
    result = judge_human_agreement(PAIRS, pl.DataFrame({"record_id": ["r0"], "judge_prefers": [None]}, schema={"record_id": pl.String, "judge_prefers": pl.String})).model_dump()
    assert (result["judged"], result["unjudged"], result["share"]) == (0, 1, None)


def test_bad_verdict_value_is_one_line_error() -> None:
    with pytest.raises(InputError, match="record r1, column 'judge_prefers': expected chosen, rejected or null, got 'both'"):
        judge_human_agreement(PAIRS, pl.DataFrame({"record_id": ["r0", "r1"], "judge_prefers": ["chosen", "both"]}))


def test_sample_is_seeded_stratified_and_order_free() -> None:
    """10 rows, law 6 / medicine 4, n = 5 -> quotas 3.0 / 2.0."""
    first = sample_for_calibration(PAIRS, 5, seed=7)
    again = sample_for_calibration(PAIRS.reverse(), 5, seed=7)
    assert first.equals(again)
    assert first.height == 5
    assert first["domain"].value_counts().sort("domain").rows() == [("law", 3), ("medicine", 2)]
    other = [sample_for_calibration(PAIRS, 5, seed=s)["record_id"].to_list() for s in range(5)]
    assert len({tuple(o) for o in other}) > 1


def test_sample_quota_largest_remainder_and_edges() -> None:
    """n = 4 -> law 2.4, medicine 1.6 -> floors 2 + 1, the larger remainder (medicine) gets the last one."""
    assert sample_for_calibration(PAIRS, 4, seed=0)["domain"].value_counts().sort("domain").rows() == [("law", 2), ("medicine", 2)]
    assert sample_for_calibration(PAIRS, 50, seed=0).height == 10
    assert sample_for_calibration(PAIRS, 0, seed=0).height == 0
