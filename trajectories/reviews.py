"""Human step reviews, a vendor layout: one row per annotator per reviewed step.

Columns (Parquet or JSONL; `columns` maps canonical name -> the vendor's name):
  annotator_id, trajectory_id, step (the step's idx, 1..n), rating (-1 wrong, 0 neutral, 1 good) — required;
  review_pass (>= 1, default 1), adjudicated (default false), is_gold (default false),
  gold_rating (-1/0/1; required on gold rows) — optional.
Rows are numbered from 0 (origin_row), as in every vendor shard.

Aggregation per (trajectory, step), reusing the judgments machinery of prefmix.annotations:
  1. only an annotator's latest pass counts (annotations.aggregate.latest_votes);
  2. annotators whose accuracy on gold trajectories (latest rating == gold_rating) is below
     `min_gold_accuracy` are excluded (annotations.aggregate.gold_accuracy); gold trajectories
     calibrate and never become rows;
  3. an adjudicated row (latest pass, last row) decides its step; adjudicators' rows are not votes;
  4. otherwise the plurality rating of counted reviews; a draw, fewer than `min_annotators`
     reviews, or a winning share below `min_agreement` leaves the step unlabelled (with that reason).
Agreement: Krippendorff's alpha (nominal) and percent agreement over (trajectory, step) units
(annotations.agreement), before and after exclusion, per review pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import polars as pl
import pyarrow.parquet as pq

from prefmix.annotations import agreement
from prefmix.annotations.aggregate import gold_accuracy, latest_votes
from prefmix.contract import Agreement, AnnotatorAccuracy, Contract
from prefmix.errors import InputError
from prefmix.store import sha256_file
from prefmix.trajectories.config import Reviews

REQUIRED = ("annotator_id", "trajectory_id", "step", "rating")
OPTIONAL = ("review_pass", "adjudicated", "is_gold", "gold_rating")
RATINGS = (-1, 0, 1)
ROW = "origin_row"


@dataclass(frozen=True)
class StepReviews:
    path: str
    sha256: str
    vendor: str
    frame: pl.DataFrame  # the canonical columns, typed, plus origin_row


class StepReviewStats(Contract):
    """Agreement and calibration of one step-review file (the shapes annotations' judgment shards report)."""

    path: str
    sha256: str
    vendor: str
    rows: int
    agreement: Agreement  # over (trajectory, step) units, counted annotators
    agreement_before_exclusion: Agreement
    agreement_non_gold: Agreement
    per_review_pass: dict[str, Agreement]  # as it stood after each pass
    annotators: list[AnnotatorAccuracy]  # accuracy on gold trajectories' steps
    excluded_annotators: list[str]
    gold_trajectories: int
    unlabelled_steps_by_reason: dict[str, int]


@dataclass(frozen=True)
class StepVerdicts:
    """Per reviewed step: the decided rating (null = unlabelled, with `unlabelled`), and the numbers behind it."""

    steps: pl.DataFrame  # trajectory_id, step, rating, unlabelled, n, share, adjudicated, annotator_ids, passes, is_gold
    gold: pl.DataFrame  # per annotator: n_gold, correct, judgments, accuracy, excluded
    stats: StepReviewStats


def read_reviews(path: str | Path, vendor: str = "unknown", columns: dict[str, str] | None = None) -> StepReviews:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: step review file not found")
    digest = sha256_file(path)
    frame = _load(path)
    mapping = {vendor_name: name for name, vendor_name in (columns or {}).items() if vendor_name in frame.columns}
    frame = frame.rename(mapping)
    for name in REQUIRED:
        if name not in frame.columns:
            raise InputError(f"{path}: missing column {name!r} (step reviews need {', '.join(REQUIRED)}; found {sorted(frame.columns)})")
    if frame.height == 0:
        raise InputError(f"{path}: no reviews")
    frame = frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    frame = _typed(frame, path)
    return StepReviews(str(path), digest, vendor, frame)


def _load(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path, infer_schema_length=None)
        if path.suffix.lower() == ".parquet":
            loaded = pl.from_arrow(pq.read_table(path))
            assert isinstance(loaded, pl.DataFrame)
            return loaded
    except Exception as exc:  # unreadable files: one line, not a traceback
        raise InputError(f"{path}: not readable ({' '.join(str(exc).split())[:120]})") from None
    raise InputError(f"{path}: unknown step review format {path.suffix!r}, expected .parquet or .jsonl")


def _bad(frame: pl.DataFrame, bad: pl.Expr, path: Path, column: str, expected: str) -> None:
    hits = frame.filter(bad.fill_null(False))
    if hits.height:
        row = hits.row(0, named=True)
        raise InputError(f"{path}: row {row[ROW]}, column {column!r}: expected {expected}, got {row[column]!r}")


def _typed(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Canonical types; the first bad value is one line naming row and column."""
    for name in ("annotator_id", "trajectory_id"):
        dtype = frame.schema[name]
        if not (dtype == pl.String or dtype.is_integer()):
            raise InputError(f"{path}: column {name!r}: expected ids (text or integers), found type {dtype}")
        frame = frame.with_columns(pl.col(name).cast(pl.String))
        _bad(frame, pl.col(name).is_null() | (pl.col(name).str.strip_chars() == ""), path, name, "an id")
    for name in ("step", "rating", "review_pass", "gold_rating"):
        if name not in frame.columns:
            continue
        dtype = frame.schema[name]
        if not (dtype.is_integer() or dtype.is_float() or dtype == pl.Null):
            raise InputError(f"{path}: column {name!r}: expected integers, found type {dtype}")
        if dtype.is_float():
            _bad(frame, pl.col(name).is_not_null() & (pl.col(name) != pl.col(name).round()), path, name, "an integer")
        frame = frame.with_columns(pl.col(name).cast(pl.Int64))
    for name in ("adjudicated", "is_gold"):
        if name in frame.columns and frame.schema[name] not in (pl.Boolean, pl.Null):
            raise InputError(f"{path}: column {name!r}: expected true/false, found type {frame.schema[name]}")
    defaults = {"review_pass": pl.lit(1, dtype=pl.Int64), "adjudicated": pl.lit(False), "is_gold": pl.lit(False), "gold_rating": pl.lit(None, dtype=pl.Int64)}
    frame = frame.with_columns([expr.alias(name) for name, expr in defaults.items() if name not in frame.columns])
    frame = frame.with_columns(pl.col("adjudicated", "is_gold").cast(pl.Boolean).fill_null(False), pl.col("review_pass").fill_null(1))
    _bad(frame, pl.col("step").is_null() | (pl.col("step") < 1), path, "step", "a step number >= 1")
    _bad(frame, pl.col("rating").is_null() | ~pl.col("rating").is_in(RATINGS), path, "rating", "-1, 0 or 1")
    _bad(frame, pl.col("review_pass") < 1, path, "review_pass", "a review pass number >= 1")
    _bad(frame, pl.col("gold_rating").is_not_null() & ~pl.col("gold_rating").is_in(RATINGS), path, "gold_rating", "-1, 0 or 1")
    _bad(frame, pl.col("is_gold") & pl.col("gold_rating").is_null(), path, "gold_rating", "the gold rating of a gold trajectory's step")
    return frame.select(ROW, *REQUIRED, *OPTIONAL)


def check_against(reviews: StepReviews, steps: pl.DataFrame) -> None:
    """Every review names a trajectory of the delivery and one of its agent steps.

    steps: steps.step_table rows (trajectory_id, idx, source, n_steps)."""
    known = steps.select("trajectory_id", pl.col("idx").cast(pl.Int64).alias("step"), "source", "n_steps")
    frame = reviews.frame.join(known, on=["trajectory_id", "step"], how="left")
    runs = steps.group_by("trajectory_id").agg(pl.col("n_steps").first().alias("steps_in_run"))
    frame = frame.join(runs, on="trajectory_id", how="left").sort(ROW)
    at = lambda r: f"{reviews.path}: row {r[ROW]}: trajectory {r['trajectory_id']}: step {r['step']}"  # noqa: E731
    missing = frame.filter(pl.col("steps_in_run").is_null())
    if missing.height:
        raise InputError(f"{at(missing.row(0, named=True))}: no such trajectory, expected the id of a run in the trajectory files")
    beyond = frame.filter(pl.col("source").is_null())
    if beyond.height:
        r = beyond.row(0, named=True)
        raise InputError(f"{at(r)}: no such step, expected 1..{r['steps_in_run']}")
    other = frame.filter(pl.col("source") != "agent")
    if other.height:
        r = other.row(0, named=True)
        raise InputError(f"{at(r)}: a {r['source']} step, expected reviews of agent steps only")


def aggregate_reviews(reviews: StepReviews, rules: Reviews) -> StepVerdicts:
    unit = pl.concat_str([pl.col("trajectory_id"), pl.col("step").cast(pl.String)], separator="\x1f")
    frame = reviews.frame.with_columns(
        item_id=unit, preference=pl.col("rating").cast(pl.String), gold_answer=pl.col("gold_rating").cast(pl.String),
    )
    votes = frame.filter(~pl.col("adjudicated"))
    latest = latest_votes(votes)
    gold = gold_accuracy(latest, rules.min_gold_accuracy)
    excluded = gold.filter(pl.col("excluded")).get_column("annotator_id")
    counted = latest.filter(~pl.col("annotator_id").is_in(excluded.implode()))

    tally = counted.group_by("trajectory_id", "step").agg(
        n=pl.len(),
        **{f"r{r + 1}": (pl.col("rating") == r).sum() for r in RATINGS},
        annotator_ids=pl.col("annotator_id").unique().sort(),
    )
    top = pl.max_horizontal("r0", "r1", "r2")
    draws = sum(((pl.col(f"r{r + 1}") == top).cast(pl.Int8) for r in RATINGS), pl.lit(0, dtype=pl.Int8))
    plurality = pl.when(draws == 1).then(
        pl.when(pl.col("r0") == top).then(pl.lit(-1)).when(pl.col("r1") == top).then(pl.lit(0)).otherwise(pl.lit(1))
    )
    adjudicated = (
        frame.filter(pl.col("adjudicated")).sort("review_pass", ROW)
        .group_by("trajectory_id", "step").agg(pl.col("rating").last().alias("adjudicated_rating"))
    )
    units = frame.group_by("trajectory_id", "step").agg(pl.col("is_gold").any(), passes=pl.col("review_pass").n_unique())
    units = units.join(tally, on=["trajectory_id", "step"], how="left").join(adjudicated, on=["trajectory_id", "step"], how="left")
    units = units.with_columns(pl.col("n", "r0", "r1", "r2").fill_null(0), top=top, vote=plurality)
    share = pl.when(pl.col("n") > 0).then(pl.col("top") / pl.col("n"))
    unlabelled = (
        pl.when(pl.col("adjudicated_rating").is_not_null()).then(pl.lit(None, dtype=pl.String))
        .when(pl.col("n") == 0).then(pl.lit("no_counted_reviews"))
        .when(pl.col("n") < rules.min_annotators).then(pl.lit("too_few_reviews"))
        .when(pl.col("vote").is_null()).then(pl.lit("rating_draw"))
        .when(share < rules.min_agreement).then(pl.lit("low_agreement"))
    )
    units = units.with_columns(share=share, unlabelled=unlabelled, adjudicated=pl.col("adjudicated_rating").is_not_null())
    units = units.with_columns(rating=pl.when(pl.col("unlabelled").is_null()).then(pl.coalesce("adjudicated_rating", "vote")))
    steps = units.select(
        "trajectory_id", "step", "rating", "unlabelled", "n", "share", "adjudicated",
        pl.col("annotator_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))), "passes", "is_gold",
    ).sort("trajectory_id", "step")
    stats = StepReviewStats(
        path=reviews.path, sha256=reviews.sha256, vendor=reviews.vendor, rows=reviews.frame.height,
        agreement=Agreement(**agreement.summary(counted)),
        agreement_before_exclusion=Agreement(**agreement.summary(latest)),
        agreement_non_gold=Agreement(**agreement.summary(counted.filter(~pl.col("is_gold")))),
        per_review_pass={k: Agreement(**v) for k, v in agreement.by_review_pass(votes, excluded.to_list()).items()},
        annotators=[AnnotatorAccuracy(**{**row, "accuracy": None if row["accuracy"] is None else round(row["accuracy"], 6)}) for row in gold.to_dicts()],
        excluded_annotators=excluded.to_list(),
        gold_trajectories=int(frame.filter(pl.col("is_gold")).get_column("trajectory_id").n_unique()),
        unlabelled_steps_by_reason=_reasons(steps),
    )
    return StepVerdicts(steps=steps, gold=gold, stats=stats)


def _reasons(steps: pl.DataFrame) -> dict[str, int]:
    counts = steps.filter(pl.col("unlabelled").is_not_null()).group_by("unlabelled").len().sort("unlabelled")
    return dict(zip(counts.get_column("unlabelled").to_list(), counts.get_column("len").to_list()))
