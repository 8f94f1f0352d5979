"""derive(): trajectories in, derived rows + counted rejections + a typed summary out.

Every trajectory ends either in at least one row or in exactly one rejection with a reason:
    trajectories_in == trajectories_in_rows + trajectories_rejected
For step labels and KTO a row is one run (rows_out == trajectories_in_rows); a pair row holds
two runs and one run may be in several pairs (up to the cap), so for pairs the identity is on
runs, with rows_out beside it. A run in no row takes the reason of the furthest stage any of
its candidate pairs reached (a pair cut by the cap got further than one with a prompt mismatch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import Field

from prefmix.contract import DerivationCounts
from prefmix.trajectories import kto, labels, pairs
from prefmix.trajectories.config import Mode, Rules
from prefmix.trajectories.reviews import StepReviews, StepReviewStats

Layout = Literal["preference", "step_labels", "kto"]
LAYOUTS: dict[str, Layout] = {"trajectory": "preference", "step": "preference", "labels": "step_labels", "kto": "kto"}
# candidate-pair drop reasons, earliest stage first
STAGES = (
    "prompt_mismatch", "no_divergence", "diverges_at_non_agent_step", "same_action_different_observation",
    "tools_mismatch", "identical_completions", "duplicate_row", "cut_by_cap",
)
REJECTION_SCHEMA = {"trajectory_id": pl.String, "task_id": pl.String, "origin_uri": pl.String, "origin_row": pl.Int64, "reason": pl.String}


class DerivationSummary(DerivationCounts):
    """What a derivation did, in numbers that reconcile (see the module doc)."""

    mode: Mode
    layout: Layout
    reviews: StepReviewStats | None = Field(None, description="step-review agreement and calibration (labels from people)")
    rules: dict[str, Any] = Field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "reconciled": self.reconciled}


@dataclass(frozen=True)
class Derivation:
    rows: pl.DataFrame  # canonical preference rows, or STEP_LABEL / KTO rows (prefmix.records)
    rejections: pl.DataFrame  # REJECTION_SCHEMA: one row per trajectory that is in no row
    summary: DerivationSummary
    candidates: pl.DataFrame | None = None  # pair modes: every candidate pair with its drop reason (null = kept)


def derive(trajectories: pl.DataFrame, mode: Mode, rules: Rules | None = None, reviews: StepReviews | None = None) -> Derivation:
    """Derive `mode` rows from a validated trajectory frame (readers.read_trajectories)."""
    rules = rules or Rules()
    if mode in ("trajectory", "step"):
        stage = pairs.trajectory_pairs(trajectories, rules) if mode == "trajectory" else pairs.step_pairs(trajectories, rules)
        used = pairs.pair_members(stage.rows)
        reasons = _pair_reasons(trajectories, used, stage)
        dropped = stage.candidates.filter(pl.col("drop").is_not_null()).group_by("drop").len().sort("drop")
        extra = {
            "candidate_pairs": stage.candidates.height,
            "candidates_dropped_by_reason": dict(zip(dropped.get_column("drop").to_list(), dropped.get_column("len").to_list())),
            "counts": stage.counts,
        }
        return _finish(trajectories, mode, rules, stage.rows, used, reasons, extra, stage.candidates)
    if mode == "labels":
        made = labels.human_labels(trajectories, reviews, rules) if reviews is not None else labels.monte_carlo_labels(trajectories, rules)
        extra = {"counts": made.counts, "reviews": made.stats}
        return _finish(trajectories, mode, rules, made.rows, made.rows.select("trajectory_id"), made.rejected, extra)
    if mode == "kto":
        rows, rejected, counts = kto.kto_rows(trajectories, rules)
        return _finish(trajectories, mode, rules, rows, rows.select("trajectory_id"), rejected, {"counts": counts})
    raise ValueError(f"unknown mode {mode!r}")


def _pair_reasons(trajectories: pl.DataFrame, used: pl.DataFrame, stage: pairs.Stage) -> pl.DataFrame:
    """One reason per run in no row: turned away before pairing, else its candidates' furthest stage."""
    stage_no = pl.col("drop").replace_strict({r: n for n, r in enumerate(STAGES)}, return_dtype=pl.Int32)
    dropped = stage.candidates.filter(pl.col("drop").is_not_null()).with_columns(stage=stage_no)
    sides = pl.concat([
        dropped.select(pl.col("chosen_id").alias("trajectory_id"), "stage", "drop"),
        dropped.select(pl.col("rejected_id").alias("trajectory_id"), "stage", "drop"),
    ])
    furthest = sides.sort("stage", descending=True).group_by("trajectory_id").agg(pl.col("drop").first().alias("reason"))
    reasons = pl.concat([stage.turned_away, furthest.join(stage.turned_away, on="trajectory_id", how="anti")])
    return reasons.join(used, on="trajectory_id", how="anti")


def _finish(
    trajectories: pl.DataFrame, mode: Mode, rules: Rules, rows: pl.DataFrame, used: pl.DataFrame,
    reasons: pl.DataFrame, extra: dict[str, Any], candidates: pl.DataFrame | None = None,
) -> Derivation:
    ids = trajectories.select("trajectory_id", "task_id", "origin_uri", "origin_row")
    rejections = ids.join(reasons, on="trajectory_id", how="inner").select(list(REJECTION_SCHEMA)).sort("origin_uri", "origin_row")
    unaccounted = ids.join(used, on="trajectory_id", how="anti").join(reasons, on="trajectory_id", how="anti")
    if unaccounted.height:
        # an accounting bug, not bad input: refuse to hand on numbers that do not add up
        raise RuntimeError(f"{unaccounted.height} trajectories ended in neither a row nor a rejection (first: {unaccounted.row(0)})")
    counts = rejections.group_by("reason").len().sort("reason")
    summary = DerivationSummary(
        mode=mode, layout=LAYOUTS[mode], trajectories_in=trajectories.height, rows_out=rows.height,
        trajectories_in_rows=used.unique().height, trajectories_rejected=rejections.height,
        rejected_by_reason=dict(zip(counts.get_column("reason").to_list(), counts.get_column("len").to_list())),
        rules=rules.model_dump(mode="json"), **extra,
    )
    if not summary.reconciled:
        raise RuntimeError(f"derivation does not reconcile: {summary.as_json()}")
    return Derivation(rows=rows, rejections=rejections, summary=summary, candidates=candidates)


def empty_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)
