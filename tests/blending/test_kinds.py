"""Kinds in the blend: shares per kind are exact, agent rows are not prompt-deduplicated against each other,
and every row of an agent task group lands in one split."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from prefmix.blending import blend
from prefmix.errors import ConfigError, QuotaShortfall
from tests.blending.blend_helpers import config, read_all
from tests.support.records import canonical, origin, records

Write = Callable[..., Path]


def agent_rows(n: int, kind: str, source: str, tasks: int, tag: str) -> pl.DataFrame:
    """n rows of one kind over `tasks` task groups; the rows of a task share its prompt (the task), as agent rows do."""
    return canonical(
        {
            "prompt": f"{tag}: fix issue {i % tasks} in the repository",
            "chosen": f"[agent] step {i} that works ({tag})",
            "rejected": f"[agent] step {i} that fails ({tag})",
            "domain": "general",
            "source": source,
            "kind": kind,
            "task_group": f"{tag}-task-{i % tasks}",
            **origin(tag),
            "origin_row": i,
        }
        for i in range(n)
    )


@pytest.fixture
def mixed(write: Write) -> tuple[Path, Path]:
    human = write("human", records(120, "human", "general", "hg"))
    synthetic = write(
        "synthetic",
        records(200, "synthetic", "general", "sg", teacher="t"),
        agent_rows(80, "step_pair", "synthetic", 10, "steps"),
        agent_rows(40, "trajectory_pair", "synthetic", 10, "runs"),
    )
    return human, synthetic


def test_kind_shares_are_exact_within_the_source(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = mixed
    shares = {"synthetic": {"single_turn": 0.5, "step_pair": 0.3, "trajectory_pair": 0.2}}
    result = blend(config(ratios={"human": 0.6, "synthetic": 0.4}, domains=["general"], kind_shares=shares),
                   [human], [synthetic], tmp_path / "out", "b1")
    rows = read_all(tmp_path / "out", result.files)
    synthetic_rows = 120 * 4 // 6  # all_human: 120 human rows at 0.6 -> 80 synthetic
    got = dict(rows.filter(pl.col("source") == "synthetic").group_by("kind").len().iter_rows())
    assert got == {"single_turn": 40, "step_pair": 24, "trajectory_pair": 16} and sum(got.values()) == synthetic_rows
    assert result.summary.by_kind.requested["general"] == {"synthetic/single_turn": 40, "synthetic/step_pair": 24,
                                                           "synthetic/trajectory_pair": 16}
    assert result.summary.by_kind.achieved["general"] == {"human/single_turn": 120, **result.summary.by_kind.requested["general"]}


def test_agent_rows_share_prompts_and_are_not_deduplicated_by_prompt(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = mixed
    shares = {"synthetic": {"single_turn": 0.0, "step_pair": 1.0}}
    result = blend(config(ratios={"human": 0.6, "synthetic": 0.4}, domains=["general"], kind_shares=shares, size=200),
                   [human], [synthetic], tmp_path / "out", "b1")
    rows = read_all(tmp_path / "out", result.files)
    steps = rows.filter(pl.col("kind") == "step_pair")
    assert steps.height == 80 and steps["prompt"].n_unique() == 10  # 8 pairs per task prompt, all kept
    assert result.summary.dedup.duplicate_prompt == 0
    assert result.summary.excluded["kind_share_zero"] == 200 + 40  # single-turn and trajectory synthetic rows


def test_a_task_group_lands_in_one_split(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = mixed
    result = blend(config(ratios={"human": 0.5, "synthetic": 0.5}, domains=["general"], eval_fraction=0.3, size=240,
                          kind_shares={"synthetic": {"single_turn": 0.5, "step_pair": 0.5}}),
                   [human], [synthetic], tmp_path / "out", "b1")
    rows = read_all(tmp_path / "out", result.files).filter(pl.col("task_group").is_not_null())
    per_group = rows.group_by("task_group").agg(pl.col("split").n_unique().alias("splits"))
    assert per_group["splits"].max() == 1 and set(rows["split"]) == {"train", "eval"}


def test_a_kind_short_of_rows_fails_naming_its_cell(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = mixed
    with pytest.raises(QuotaShortfall, match=r"general/synthetic/trajectory_pair wanted 64, available 40"):
        blend(config(ratios={"human": 0.6, "synthetic": 0.4}, domains=["general"],
                     kind_shares={"synthetic": {"single_turn": 0.2, "trajectory_pair": 0.8}}),
              [human], [synthetic], tmp_path / "out", "b1")


def test_kind_shares_are_validated() -> None:
    with pytest.raises(ConfigError, match="blend.kind_shares: unknown kind 'episode'"):
        config(kind_shares={"synthetic": {"episode": 1.0}})
    with pytest.raises(ConfigError, match="blend.kind_shares: shares must sum to 1"):
        config(kind_shares={"synthetic": {"single_turn": 0.5, "step_pair": 0.2}})


def test_domain_kind_shares_split_only_their_domain(write: Write, tmp_path: Path) -> None:
    """Agent rows are of one domain (agent.rules.domain): its kinds are split there, other domains take any kind."""
    human = write("human", records(70, "human", "general", "hg"), records(70, "human", "law", "hl"))
    synthetic = write(
        "synthetic",
        records(60, "synthetic", "general", "sg", teacher="t"), records(60, "synthetic", "law", "sl", teacher="t"),
        agent_rows(30, "step_pair", "synthetic", 6, "steps"), agent_rows(20, "trajectory_pair", "synthetic", 6, "runs"),
    )
    shares = {"general": {"synthetic": {"single_turn": 0.4, "step_pair": 0.4, "trajectory_pair": 0.2}}}
    result = blend(config(ratios={"human": 0.7, "synthetic": 0.3}, domains=["general", "law"], domain_kind_shares=shares),
                   [human], [synthetic], tmp_path / "out", "b1")
    rows = read_all(tmp_path / "out", result.files).filter(pl.col("source") == "synthetic")
    got = {(d, k): n for d, k, n in rows.group_by("domain", "kind").len().iter_rows()}
    assert got == {("general", "single_turn"): 12, ("general", "step_pair"): 12, ("general", "trajectory_pair"): 6,
                   ("law", "single_turn"): 30}
    assert result.summary.by_kind.requested == {"general": {"synthetic/single_turn": 12, "synthetic/step_pair": 12,
                                                            "synthetic/trajectory_pair": 6}}


def test_domain_kind_shares_are_validated() -> None:
    with pytest.raises(ConfigError, match="blend.domain_kind_shares: general: shares must sum to 1"):
        config(domain_kind_shares={"general": {"synthetic": {"single_turn": 0.5}}})
    with pytest.raises(ConfigError, match="blend names domain 'code', which is not in domains"):
        config(domain_kind_shares={"code": {"synthetic": {"step_pair": 1.0}}})
