"""Step labels in TRL's PRM (stepwise supervision) layout: prompt, completions (one text per agent step), labels.

prompt = the steps before the first agent step. Completion i = agent step i as messages with its
results, preceded by any user/system steps since the previous agent step (context arrives before
the action it conditions); steps after the last agent step are dropped. Labels belong to agent steps.

From people (reviews.py verdicts), the first-error rule (PRM800K): walk the agent steps in order;
rating 1 -> true, -1 -> false, 0 -> `zero_rating` (good -> true, bad -> false); the first false
label is the last labelled step (nothing after a first error is labelled); an unlabelled step
(not reviewed, a draw, too few reviews) ends the labelled part before it. So labels are always
[true, ..., true] or [true, ..., true, false]. Gold trajectories calibrate annotators and make no
row (gold_trajectory); runs without reviews: no_reviews; runs whose first agent step has no label:
no_labelled_steps. source = human.

From outcomes (Monte Carlo, Math-Shepherd): the rollouts of a step are the runs of the same pairing
group (task, environment, verifier) whose steps up to and including it are the same (steps.py
prefix); N = their number, successes = how many resolved. hard: label = any success; soft: label =
share >= soft_threshold (the share is kept in soft_labels either way, N in rollouts). A step with
N < min_rollouts ends the labelled part (too_few_rollouts when it is the first). Runs without
`resolved` are neither rows nor rollouts (no_outcome). source = synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import polars as pl

from prefmix.records import conform_step_labels, record_ids
from prefmix.trajectories.config import Rules
from prefmix.trajectories.pairing import outcomes
from prefmix.trajectories.render import MESSAGES_DTYPE, render
from prefmix.trajectories.reviews import StepReviews, StepReviewStats, aggregate_reviews, check_against
from prefmix.trajectories.steps import message_table, spans, step_table


@dataclass
class Labelled:
    rows: pl.DataFrame
    rejected: pl.DataFrame  # trajectory_id, reason
    counts: dict[str, int] = field(default_factory=dict)
    stats: StepReviewStats | None = None


def first_error(labelled: pl.DataFrame) -> pl.DataFrame:
    """Keep, per trajectory (rows ordered by pos), the agent steps up to the first false label (inclusive) and
    before the first missing one. labelled: trajectory_id, pos, label (nullable bool)."""
    stop = (pl.col("label").is_null() | ~pl.col("label")).cast(pl.Int32)
    before = (stop.cum_sum() - stop).over("trajectory_id") == 0
    return labelled.sort("trajectory_id", "pos").filter(before & pl.col("label").is_not_null())


def until_short(labelled: pl.DataFrame, min_rollouts: int) -> pl.DataFrame:
    """Keep, per trajectory, the agent steps before the first with fewer than min_rollouts rollouts."""
    short = (pl.col("rollouts") < min_rollouts).cast(pl.Int32)
    return labelled.sort("trajectory_id", "pos").filter(short.cum_sum().over("trajectory_id") == 0)


def _segments(steps: pl.DataFrame, span: pl.DataFrame) -> pl.DataFrame:
    """Per agent step (trajectory_id, pos, idx): the text of its completion (see the module doc)."""
    body = steps.join(span.filter(pl.col("first_agent").is_not_null()).select("trajectory_id", "first_agent", "last_agent"), on="trajectory_id")
    body = body.filter((pl.col("pos") >= pl.col("first_agent")) & (pl.col("pos") <= pl.col("last_agent"))).sort("trajectory_id", "pos")
    body = body.with_columns(segment=pl.when(pl.col("is_agent")).then(pl.col("pos")).fill_null(strategy="backward").over("trajectory_id"))
    messages = message_table(body).join(body.select("trajectory_id", "pos", "segment"), on=["trajectory_id", "pos"])
    texts = (
        messages.sort("trajectory_id", "pos", "mpos")
        .group_by("trajectory_id", "segment", maintain_order=True)
        .agg(pl.col("message").alias("messages"))
        .select("trajectory_id", pl.col("segment").alias("pos"), render(pl.col("messages")).alias("text"))
    )
    return texts


def _prompts(steps: pl.DataFrame, span: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
    before = steps.join(ids, on="trajectory_id", how="semi").join(span.select("trajectory_id", "first_agent"), on="trajectory_id")
    before = message_table(before.filter(pl.col("pos") < pl.col("first_agent")))
    contexts = before.sort("trajectory_id", "pos", "mpos").group_by("trajectory_id", maintain_order=True).agg(pl.col("message").alias("context"))
    return ids.join(contexts, on="trajectory_id", how="left").with_columns(pl.col("context").fill_null(pl.lit([], dtype=MESSAGES_DTYPE)))


def _rows(labelled: pl.DataFrame, steps: pl.DataFrame, span: pl.DataFrame, trajectories: pl.DataFrame, rules: Rules,
          method: str, source: str, extra: list[pl.Expr], after: list[pl.Expr] | None = None) -> pl.DataFrame:
    """PRM rows from kept labelled agent steps (trajectory_id, pos, idx, label, and the columns `extra` aggregates
    per run; `after` then derives columns from those aggregates)."""
    texts = _segments(steps.join(labelled.select("trajectory_id").unique(), on="trajectory_id", how="semi"), span)
    per_step = labelled.join(texts, on=["trajectory_id", "pos"], how="left").sort("trajectory_id", "pos")
    grouped = per_step.group_by("trajectory_id", maintain_order=True).agg(
        pl.col("text").alias("completions"), pl.col("label").alias("labels"), pl.col("idx").cast(pl.Int32).alias("steps"), *extra
    )
    grouped = _prompts(steps, span, grouped.select("trajectory_id")).join(grouped, on="trajectory_id")
    meta = trajectories.select("trajectory_id", "task_id", "task_group", "tools", "origin_uri", "origin_sha256", "origin_row")
    frame = grouped.join(meta, on="trajectory_id").sort("origin_uri", "origin_row").with_columns(
        prompt=render(pl.col("context")),
        label_method=pl.lit(method),
        domain=pl.lit(rules.domain),
        source=pl.lit(source),
    ).with_columns(after or [])
    joined = frame.select(
        pl.col("completions").list.join("\x1e").alias("c"),
        pl.col("labels").list.eval(pl.element().cast(pl.Int8).cast(pl.String)).list.join(",").alias("l"),
    )
    ids = record_ids(frame.get_column("prompt").to_list(), joined.get_column("c").to_list(), joined.get_column("l").to_list())
    return conform_step_labels(frame.with_columns(pl.Series("record_id", ids, dtype=pl.String)))


def human_labels(trajectories: pl.DataFrame, reviews: StepReviews, rules: Rules) -> Labelled:
    steps = step_table(trajectories)
    span = spans(steps)
    check_against(reviews, steps)
    verdicts = aggregate_reviews(reviews, rules.reviews)
    good_zero = rules.reviews.zero_rating == "good"
    per_run = verdicts.steps.group_by("trajectory_id").agg(pl.col("is_gold").any())
    agent = steps.filter("is_agent").select("trajectory_id", "pos", "idx")
    judged = agent.join(per_run.filter(~pl.col("is_gold")).select("trajectory_id"), on="trajectory_id", how="semi")
    judged = judged.join(verdicts.steps.select("trajectory_id", pl.col("step").cast(pl.Int32).alias("idx"), "rating", "annotator_ids", "share", "passes", "adjudicated"),
                         on=["trajectory_id", "idx"], how="left")
    judged = judged.with_columns(label=pl.when(pl.col("rating") == 0).then(pl.lit(good_zero)).otherwise(pl.col("rating") == 1))
    kept = first_error(judged)
    explode = lambda e: e.list.explode(keep_nulls=False, empty_as_null=False)  # noqa: E731
    per_run_reviews = [
        explode(pl.col("annotator_ids")).unique().sort().alias("_ids"),
        pl.col("share").mean().alias("_agreement"),
        pl.col("passes").max().alias("_passes"),
        pl.col("adjudicated").any().alias("_adjudicated"),
    ]
    annotation = pl.struct(
        pl.lit(reviews.vendor).alias("vendor"),
        pl.col("_ids").alias("annotator_ids"),
        pl.col("_ids").list.len().cast(pl.Int32).alias("annotator_count"),
        pl.col("_agreement").alias("agreement"),
        pl.col("_passes").cast(pl.Int32).alias("review_passes"),
        pl.col("_adjudicated").alias("adjudicated"),
    ).alias("annotation")
    rows = _rows(kept, steps, span, trajectories, rules, "human_first_error", "human", per_run_reviews, [annotation])
    ids = trajectories.select("trajectory_id")
    gold = per_run.filter("is_gold").select("trajectory_id", pl.lit("gold_trajectory").alias("reason"))
    unreviewed = ids.join(per_run, on="trajectory_id", how="anti").select("trajectory_id", pl.lit("no_reviews").alias("reason"))
    no_labels = (
        per_run.filter(~pl.col("is_gold")).select("trajectory_id").join(rows.select("trajectory_id"), on="trajectory_id", how="anti")
        .select("trajectory_id", pl.lit("no_labelled_steps").alias("reason"))
    )
    labelled = int(rows.select(pl.col("labels").list.len().sum()).item() or 0)
    counts = {
        "labelled_steps": labelled,
        "rows_ending_in_error": int(rows.select((~pl.col("labels").list.last()).sum()).item() or 0),
        "agent_steps_not_labelled": judged.height - labelled,  # after a first error, a gap or a draw (reviewed runs)
    }
    return Labelled(rows=rows, rejected=pl.concat([gold, unreviewed, no_labels]), counts=counts, stats=verdicts.stats)


def monte_carlo_labels(trajectories: pl.DataFrame, rules: Rules) -> Labelled:
    settings = rules.monte_carlo
    steps = step_table(trajectories)
    span = spans(steps)
    runs = outcomes(trajectories).join(span, on="trajectory_id", how="left")
    runs = runs.with_columns(
        reason=pl.when(pl.col("first_agent").is_null()).then(pl.lit("no_agent_turn")).when(pl.col("resolved").is_null()).then(pl.lit("no_outcome"))
    )
    eligible = runs.filter(pl.col("reason").is_null()).select("trajectory_id", "group", "resolved")
    at = steps.join(eligible, on="trajectory_id").select("trajectory_id", "group", "resolved", "pos", "idx", "is_agent", "prefix")
    rollouts = at.group_by("group", "pos", "prefix").agg(rollouts=pl.len().cast(pl.Int64), successes=pl.col("resolved").cast(pl.Int64).sum())
    agent = at.filter("is_agent").join(rollouts, on=["group", "pos", "prefix"]).with_columns(share=pl.col("successes") / pl.col("rollouts"))
    hard = settings.estimate == "hard"
    agent = agent.with_columns(label=(pl.col("successes") > 0) if hard else (pl.col("share") >= settings.soft_threshold))
    kept = until_short(agent, settings.min_rollouts)
    rows = _rows(kept, steps, span, trajectories, rules, f"mc_{settings.estimate}", "synthetic",
                 [pl.col("share").alias("soft_labels"), pl.col("rollouts")])
    short = eligible.select("trajectory_id").join(rows.select("trajectory_id"), on="trajectory_id", how="anti").select(
        "trajectory_id", pl.lit("too_few_rollouts").alias("reason")
    )
    rejected = pl.concat([runs.filter(pl.col("reason").is_not_null()).select("trajectory_id", "reason"), short])
    counts = {
        "labelled_steps": int(rows.select(pl.col("labels").list.len().sum()).item() or 0),
        "steps_with_several_rollouts": int(agent.filter(pl.col("rollouts") > 1).height),
    }
    return Labelled(rows=rows, rejected=rejected, counts=counts)
