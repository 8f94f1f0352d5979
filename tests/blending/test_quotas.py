"""Exact counts: quotas from ratios, per-domain overrides, teacher shares and sizes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pytest

from prefmix.blending import blend
from prefmix.blending.quotas import apportion
from tests.blending.blend_helpers import config, read_all
from tests.support.records import records


def test_apportion_is_exact_and_largest_remainder() -> None:
    assert apportion(10, {"human": Fraction(7, 10), "synthetic": Fraction(3, 10)}) == {"human": 7, "synthetic": 3}
    assert apportion(7, {"a": Fraction(1, 3), "b": Fraction(1, 3), "c": Fraction(1, 3)}) == {"a": 3, "b": 2, "c": 2}
    assert apportion(101, {"x": Fraction(1, 2), "y": Fraction(1, 4), "z": Fraction(1, 4)}) == {"x": 51, "y": 25, "z": 25}
    for total in range(0, 200, 7):
        assert sum(apportion(total, {"a": Fraction(1, 7), "b": Fraction(2, 7), "c": Fraction(4, 7)}).values()) == total


@pytest.fixture
def inputs(write: Callable[..., Path]) -> tuple[Path, Path]:
    human = write(
        "human",
        records(120, "human", "general", "hg"),
        records(60, "human", "medicine", "hm"),
        records(40, "human", "law", "hl"),
    )
    synthetic = write(
        "synthetic",
        records(150, "synthetic", "general", "sga", teacher="teacher-a"),
        records(150, "synthetic", "general", "sgb", teacher="teacher-b"),
        records(80, "synthetic", "medicine", "sma", teacher="teacher-a"),
        records(80, "synthetic", "medicine", "smb", teacher="teacher-b"),
        records(60, "synthetic", "law", "sla", teacher="teacher-a"),
        records(60, "synthetic", "law", "slb", teacher="teacher-b"),
    )
    return human, synthetic


CASES: list[tuple[dict[str, Any], dict[str, dict[str, int]], dict[str, dict[str, int]]]] = [
    # all_human, global 70/30: synthetic = round(h * 3/7)
    (
        {"ratios": {"human": 0.7, "synthetic": 0.3}},
        {"general": {"human": 120, "synthetic": 51}, "medicine": {"human": 60, "synthetic": 26}, "law": {"human": 40, "synthetic": 17}},
        {},
    ),
    # per-domain override: medicine 90/10, law 50/50
    (
        {"ratios": {"human": 0.7, "synthetic": 0.3}, "domain_ratios": {"medicine": {"human": 0.9, "synthetic": 0.1}, "law": {"human": 0.5, "synthetic": 0.5}}},
        {"general": {"human": 120, "synthetic": 51}, "medicine": {"human": 60, "synthetic": 7}, "law": {"human": 40, "synthetic": 40}},
        {},
    ),
    # a number of rows split by domain_shares, then by ratio; teacher shares inside synthetic
    (
        {"ratios": {"human": 0.6, "synthetic": 0.4}, "size": 201, "domain_shares": {"general": 0.5, "medicine": 0.3, "law": 0.2},
         "teacher_shares": {"teacher-a": 0.75, "teacher-b": 0.25}},
        # domains 100.5 / 60.3 / 40.2 -> 101 / 60 / 40; general 60.6 / 40.4 -> 61 / 40
        {"general": {"human": 61, "synthetic": 40}, "medicine": {"human": 36, "synthetic": 24}, "law": {"human": 24, "synthetic": 16}},
        {"general": {"teacher-a": 30, "teacher-b": 10}, "medicine": {"teacher-a": 18, "teacher-b": 6}, "law": {"teacher-a": 12, "teacher-b": 4}},
    ),
    # synthetic only, with teacher shares and all synthetic from one teacher in law
    (
        {"ratios": {"human": 0.0, "synthetic": 1.0}, "size": 90, "domain_shares": {"general": 0.6, "law": 0.4},
         "teacher_shares": {"teacher-a": 0.5, "teacher-b": 0.5}},
        {"general": {"human": 0, "synthetic": 54}, "medicine": {"human": 0, "synthetic": 0}, "law": {"human": 0, "synthetic": 36}},
        {"general": {"teacher-a": 27, "teacher-b": 27}, "medicine": {"teacher-a": 0, "teacher-b": 0}, "law": {"teacher-a": 18, "teacher-b": 18}},
    ),
    # a number of rows without domain shares: domains in proportion to what they can supply at 50/50
    # (general min(120, 300)/0.5 = 240, medicine 120, law 80 -> 440 capacity)
    (
        {"ratios": {"human": 0.5, "synthetic": 0.5}, "size": 110},
        {"general": {"human": 30, "synthetic": 30}, "medicine": {"human": 15, "synthetic": 15}, "law": {"human": 10, "synthetic": 10}},
        {},
    ),
]


@pytest.mark.parametrize("blend_cfg,expected,expected_teachers", CASES)
def test_achieved_counts_are_exact(
    inputs: tuple[Path, Path], tmp_path: Path, blend_cfg: dict[str, Any], expected: dict[str, dict[str, int]], expected_teachers: dict[str, dict[str, int]]
) -> None:
    human, synthetic = inputs
    result = blend(config(**blend_cfg), [human], [synthetic], tmp_path / "out", "b1")
    assert result.summary.requested == expected
    assert result.summary.achieved == expected
    total = sum(n for by_source in expected.values() for n in by_source.values())
    assert result.rows == total
    rows = read_all(tmp_path / "out", result.files)
    assert rows.height == total
    counted = rows.group_by("domain", "source").len()
    for row in counted.iter_rows(named=True):
        assert expected[row["domain"]][row["source"]] == row["len"]
    if expected_teachers:
        assert result.summary.by_teacher.requested == expected_teachers
        teachers = rows.filter(pl.col("source") == "synthetic").group_by("domain", pl.col("generation").struct.field("teacher")).len()
        for row in teachers.iter_rows(named=True):
            assert expected_teachers[row["domain"]][row["teacher"]] == row["len"]
        assert sum(row["len"] for row in teachers.iter_rows(named=True)) == sum(sum(t.values()) for t in expected_teachers.values())


def test_every_input_row_is_accounted_for(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = inputs
    summary = blend(config(ratios={"human": 0.7, "synthetic": 0.3}), [human], [synthetic], tmp_path / "out", "b1").summary.model_dump()
    removed = summary["dedup"]["exact_record_id"] + summary["dedup"]["duplicate_prompt"]
    excluded = sum(summary["excluded"].values())
    assert sum(summary["input_rows"].values()) == removed + excluded + summary["not_sampled"] + summary["selected_unique"]
    assert summary["splits"]["train"] + summary["splits"]["eval"] == summary["rows"]


def test_sample_is_seeded_not_first_rows(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = inputs
    picked = {}
    for seed in (1, 2):
        result = blend(config(seed=seed, ratios={"human": 0.7, "synthetic": 0.3}), [human], [synthetic], tmp_path / f"s{seed}", "b1")
        rows = read_all(tmp_path / f"s{seed}", result.files).filter(pl.col("source") == "synthetic", pl.col("domain") == "general")
        picked[seed] = set(zip(rows["origin_uri"], rows["origin_row"]))
        assert rows.height == 51
    assert picked[1] != picked[2]
    first = {("file:///vendor/sga.parquet", i) for i in range(51)}
    assert picked[1] != first
