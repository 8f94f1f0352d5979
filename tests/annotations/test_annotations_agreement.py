"""Agreement numbers against a published example and hand-computed cases."""

from __future__ import annotations

import polars as pl
import pytest

from prefmix.annotations.agreement import alpha_nominal, percent_agreement, summary

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# 4 observers, 12 units, values 1-5, missing data; published nominal alpha = 0.743.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _votes(table: dict[str, list]) -> pl.DataFrame:
    rows = [(f"u{u}", coder, str(v)) for coder, values in table.items() for u, v in enumerate(values) if v is not None]
    return pl.DataFrame(rows, schema=["item_id", "annotator_id", "preference"], orient="row")


def test_alpha_matches_krippendorff_2011_published_example() -> None:
    assert round(alpha_nominal(_votes(KRIPPENDORFF_2011)), 3) == 0.743


def test_alpha_hand_computed() -> None:
    """Units (a,a), (b,b), (a,b): o_ab = o_ba = 1, n = 6, n_a = n_b = 3 -> alpha = 1 - 5 * 2 / 18 = 4/9."""
    votes = _votes({"x": ["a", "b", "a"], "y": ["a", "b", "b"]})
    assert alpha_nominal(votes) == pytest.approx(4 / 9)


def test_percent_agreement_pools_annotator_pairs() -> None:
    """(a,a,a): 6/6 ordered pairs agree; (a,b): 0/2; (a,a,b,b): 4/12 -> 10/20; the lone vote in u3 is unpairable."""
    rows = [("u0", "p", "a"), ("u0", "q", "a"), ("u0", "r", "a"), ("u1", "p", "a"), ("u1", "q", "b"),
            ("u2", "p", "a"), ("u2", "q", "a"), ("u2", "r", "b"), ("u2", "s", "b"), ("u3", "p", "tie")]
    votes = pl.DataFrame(rows, schema=["item_id", "annotator_id", "preference"], orient="row")
    assert percent_agreement(votes) == pytest.approx(0.5)
    stats = summary(votes)
    assert (stats["items"], stats["pairable_items"], stats["judgments"], stats["annotators"]) == (4, 3, 10, 4)


def test_alpha_undefined_without_variation() -> None:
    """Everyone always says a: expected disagreement is 0, alpha is undefined (None), agreement is 1."""
    votes = _votes({"x": ["a", "a"], "y": ["a", "a"]})
    assert alpha_nominal(votes) is None
    assert percent_agreement(votes) == 1.0
