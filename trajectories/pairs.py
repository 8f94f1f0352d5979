"""Trajectory pairs and step pairs: canonical preference rows (TRL conversational layout, `tools` column).

Trajectory pair (kind trajectory_pair), for two runs of one pairing group (pairing.py):
  context = the steps before the first agent step (system and user), which must be the same in
  both runs (else prompt_mismatch); chosen/rejected_messages = the rest of each run, from its first
  to its last agent step. Both sides end on an agent turn: trailing non-agent steps are trimmed and
  the results of the last agent step are dropped (its tool output would otherwise end the completion);
  both are counted. A run without an agent step is rejected (no_agent_turn).
Step pair (kind step_pair): k = the length of the longest common prefix of the two runs' steps
  (steps compared as in steps.py); context = steps[:k] of the chosen run with their results (as
  `tool` messages); chosen/rejected_messages = the single agent message at step k of each run (text
  and calls, no result), so no tool output is in a completion. Rejected when one run is a prefix of
  the other (no_divergence), when step k is not an agent step in both (diverges_at_non_agent_step),
  or when the two agent messages at k are the same and only the results differed
  (same_action_different_observation). trajectory.divergence_step = k (0-based: steps[k] differ).
Both kinds: the run that wins under pairing.py is chosen; the two runs must offer the same tools
  (tools_mismatch); equal rows keep the first in seeded order (duplicate_row); then the cap.
  source is `human` when both outcomes came from a human verifier, else `synthetic` (a test or
  judge decided). Scores and trajectory.*_outcome are the outcome values. Origin = the chosen run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from prefmix.records import conform, with_record_id
from prefmix.trajectories import pairing
from prefmix.trajectories.config import Rules
from prefmix.trajectories.render import MESSAGES_DTYPE, render
from prefmix.trajectories.steps import message_table, spans, step_table


@dataclass
class Stage:
    """What one derivation made: rows, every candidate pair with its drop reason (null = kept), and the
    trajectories turned away before pairing, with their reason."""

    rows: pl.DataFrame
    candidates: pl.DataFrame
    turned_away: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def _implode(messages: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return messages.sort(*by, "pos", "mpos").group_by(by, maintain_order=True).agg(pl.col("message").alias("messages"))


def _prepare(trajectories: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Steps, spans, eligible outcomes and the runs turned away for having no agent step."""
    steps = step_table(trajectories)
    span = spans(steps)
    runs = pairing.outcomes(trajectories).join(span, on="trajectory_id", how="left")
    no_agent = runs.filter(pl.col("first_agent").is_null()).select("trajectory_id", pl.lit("no_agent_turn").alias("reason"))
    return steps, span, runs.filter(pl.col("first_agent").is_not_null()), no_agent


def _meta(trajectories: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    return trajectories.select("trajectory_id", "task_group", "tools", "origin_uri", "origin_sha256", "origin_row").join(
        runs.select("trajectory_id", "task_id", "env_key", "verifier_kind"), on="trajectory_id"
    )


def _sided(pairs: pl.DataFrame, per_run: pl.DataFrame) -> pl.DataFrame:
    """Join per-run columns onto both sides of each pair: name_c (chosen) and name_r (rejected)."""
    cols = [c for c in per_run.columns if c != "trajectory_id"]
    pairs = pairs.join(per_run.rename({c: f"{c}_c" for c in cols}), left_on="chosen_id", right_on="trajectory_id", how="left")
    return pairs.join(per_run.rename({c: f"{c}_r" for c in cols}), left_on="rejected_id", right_on="trajectory_id", how="left")


def _same_text(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a == b).fill_null(False) | (a.is_null() & b.is_null())


def run_sides(steps: pl.DataFrame, span: pl.DataFrame) -> pl.DataFrame:
    """Per run with an agent step: prompt_key (its steps before the first agent step), completion_key (first..last
    agent step, the last without its results), trimmed (trailing non-agent steps cut), dropped_results."""
    salted = pl.col("prefix") - pl.col("prefix_before")
    last_agent = pl.col("pos") == pl.col("last_agent")
    action_salted = (pl.struct(pl.col("action_key").alias("key"), "pos").hash(3) & ((1 << 40) - 1)).cast(pl.UInt64)
    in_completion = (pl.col("pos") >= pl.col("first_agent")) & (pl.col("pos") <= pl.col("last_agent"))
    body = steps.join(span.filter(pl.col("first_agent").is_not_null()).select("trajectory_id", "first_agent", "last_agent"), on="trajectory_id")
    return body.group_by("trajectory_id").agg(
        prompt_key=pl.col("prefix_before").filter(pl.col("pos") == pl.col("first_agent")).first(),
        completion_key=pl.when(last_agent).then(action_salted).otherwise(salted).filter(in_completion).sum(),
        trimmed=(pl.col("n_steps").first() - 1 - pl.col("last_agent").first()) > 0,
        dropped_results=(pl.col("n_results").filter(last_agent).first() > 0),
    )


def side_messages(steps: pl.DataFrame, span: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
    """Per run of `ids` (trajectory_id): context (steps before the first agent step, as messages) and completion
    (first..last agent step; the last agent step's own message only, so the completion ends on an agent turn)."""
    body = steps.join(ids, on="trajectory_id", how="semi").join(
        span.filter(pl.col("first_agent").is_not_null()).select("trajectory_id", "first_agent", "last_agent"), on="trajectory_id"
    )
    body = body.filter(pl.col("pos") <= pl.col("last_agent"))
    messages = message_table(body, results=pl.col("pos") != pl.col("last_agent"))
    messages = messages.join(body.select("trajectory_id", "pos", "first_agent"), on=["trajectory_id", "pos"])
    contexts = _implode(messages.filter(pl.col("pos") < pl.col("first_agent")), ["trajectory_id"]).rename({"messages": "context"})
    completions = _implode(messages.filter(pl.col("pos") >= pl.col("first_agent")), ["trajectory_id"]).rename({"messages": "completion"})
    return ids.select("trajectory_id").unique().join(contexts, on="trajectory_id", how="left").join(completions, on="trajectory_id", how="left").with_columns(
        pl.col("context").fill_null(pl.lit([], dtype=MESSAGES_DTYPE))
    )


def trajectory_pairs(trajectories: pl.DataFrame, rules: Rules) -> Stage:
    steps, span, runs, no_agent = _prepare(trajectories)
    pairs, unpaired = pairing.candidates(runs)
    per_run = run_sides(steps, span)
    cand = _sided(pairs, per_run.join(trajectories.select("trajectory_id", "tools"), on="trajectory_id"))
    cand = cand.with_columns(
        drop=pl.when(pl.col("prompt_key_c") != pl.col("prompt_key_r")).then(pl.lit("prompt_mismatch"))
        .when(~_same_text(pl.col("tools_c"), pl.col("tools_r"))).then(pl.lit("tools_mismatch"))
        .when(pl.col("completion_key_c") == pl.col("completion_key_r")).then(pl.lit("identical_completions"))
    )
    cand = pairing.with_order(cand, rules.seed)
    cand = pairing.first_per_key(cand, ["group", "prompt_key_c", "completion_key_c", "completion_key_r"])
    cand = pairing.cap(cand, rules.max_pairs_per_task)
    kept = cand.filter(pl.col("drop").is_null())

    needed = pl.concat([kept.select(pl.col("chosen_id").alias("trajectory_id")), kept.select(pl.col("rejected_id").alias("trajectory_id"))]).unique()
    sides = side_messages(steps, span, needed)
    kept = kept.join(sides.select("trajectory_id", "context", pl.col("completion").alias("chosen_messages")), left_on="chosen_id", right_on="trajectory_id", how="left")
    kept = kept.join(sides.select("trajectory_id", pl.col("completion").alias("rejected_messages")), left_on="rejected_id", right_on="trajectory_id", how="left")
    kept = kept.with_columns(divergence_step=pl.lit(None, dtype=pl.Int32))
    rows, cand = _rows(kept, cand, trajectories, runs, "trajectory_pair", rules)
    used = per_run.join(pair_members(rows), on="trajectory_id", how="semi")
    counts = {
        "trimmed_trailing_steps": int(used.get_column("trimmed").sum()),
        "dropped_final_results": int(used.get_column("dropped_results").fill_null(False).sum()),
    }
    return Stage(rows, cand, pl.concat([no_agent, unpaired]), counts)


def step_pairs(trajectories: pl.DataFrame, rules: Rules) -> Stage:
    steps, span, runs, no_agent = _prepare(trajectories)
    pairs, unpaired = pairing.candidates(runs)
    keys = steps.select("trajectory_id", "pos", "key")
    # k: the first position where the chosen run's step differs from the rejected run's (or either ends)
    aligned = pairs.select("pair", "chosen_id", "rejected_id").join(keys, left_on="chosen_id", right_on="trajectory_id")
    aligned = aligned.join(keys.rename({"key": "key_r"}), left_on=["rejected_id", "pos"], right_on=["trajectory_id", "pos"], how="left")
    first_diff = aligned.filter(pl.col("key_r").is_null() | (pl.col("key") != pl.col("key_r"))).group_by("pair").agg(k=pl.col("pos").min())
    lengths = span.select("trajectory_id", "n_steps")
    cand = _sided(pairs, lengths.join(trajectories.select("trajectory_id", "tools"), on="trajectory_id")).join(first_diff, on="pair", how="left")
    cand = cand.with_columns(k=pl.coalesce("k", pl.min_horizontal("n_steps_c", "n_steps_r")).cast(pl.Int32))
    at_k = steps.select("trajectory_id", "pos", "is_agent", "action_key", "prefix_before", "action")
    cand = cand.join(at_k.rename({c: f"{c}_c" for c in at_k.columns[2:]}), left_on=["chosen_id", "k"], right_on=["trajectory_id", "pos"], how="left")
    cand = cand.join(at_k.rename({c: f"{c}_r" for c in at_k.columns[2:]}), left_on=["rejected_id", "k"], right_on=["trajectory_id", "pos"], how="left")
    cand = cand.with_columns(
        drop=pl.when((pl.col("k") >= pl.col("n_steps_c")) | (pl.col("k") >= pl.col("n_steps_r"))).then(pl.lit("no_divergence"))
        .when(~(pl.col("is_agent_c") & pl.col("is_agent_r"))).then(pl.lit("diverges_at_non_agent_step"))
        .when(pl.col("action_key_c") == pl.col("action_key_r")).then(pl.lit("same_action_different_observation"))
        .when(~_same_text(pl.col("tools_c"), pl.col("tools_r"))).then(pl.lit("tools_mismatch"))
    )
    cand = pairing.with_order(cand, rules.seed)
    cand = pairing.first_per_key(cand, ["group", "k", "prefix_before_c", "action_key_c", "action_key_r"])
    cand = pairing.cap(cand, rules.max_pairs_per_task)
    kept = cand.filter(pl.col("drop").is_null())

    prefix = message_table(steps.join(kept.select(pl.col("chosen_id").alias("trajectory_id")).unique(), on="trajectory_id", how="semi"))
    prefix = kept.select("pair", "chosen_id", "k").join(prefix, left_on="chosen_id", right_on="trajectory_id").filter(pl.col("pos") < pl.col("k"))
    contexts = _implode(prefix, ["pair"]).rename({"messages": "context"})
    kept = kept.join(contexts, on="pair", how="left").with_columns(
        pl.col("context").fill_null(pl.lit([], dtype=MESSAGES_DTYPE)),
        pl.concat_list("action_c").alias("chosen_messages"),
        pl.concat_list("action_r").alias("rejected_messages"),
        pl.col("k").alias("divergence_step"),
    )
    rows, cand = _rows(kept, cand, trajectories, runs, "step_pair", rules)
    return Stage(rows, cand, pl.concat([no_agent, unpaired]), {})


def pair_members(rows: pl.DataFrame) -> pl.DataFrame:
    """The trajectory ids in pair rows, chosen or rejected side, each once."""
    lineage = pl.col("trajectory")
    return pl.concat([
        rows.select(lineage.struct.field("chosen_trajectory_id").alias("trajectory_id")),
        rows.select(lineage.struct.field("rejected_trajectory_id").alias("trajectory_id")),
    ]).unique()


def _rows(kept: pl.DataFrame, cand: pl.DataFrame, trajectories: pl.DataFrame, runs: pl.DataFrame, kind: str, rules: Rules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Canonical rows for the kept pairs; rows whose record_id an earlier row (seeded order) has are dropped
    as duplicate_row in `cand` too."""
    meta = _meta(trajectories, runs).select("trajectory_id", "task_id", "task_group", "env_key", "tools", "verifier_kind", "origin_uri", "origin_sha256", "origin_row")
    kept = kept.join(meta, left_on="chosen_id", right_on="trajectory_id", how="left")
    kept = kept.join(meta.select("trajectory_id", pl.col("verifier_kind").alias("rejected_verifier")), left_on="rejected_id", right_on="trajectory_id", how="left")
    human = (pl.col("verifier_kind") == "human") & (pl.col("rejected_verifier") == "human")
    frame = kept.sort("order_key").select(
        "pair", "order_key",
        render(pl.col("context")).alias("prompt"),
        render(pl.col("chosen_messages")).alias("chosen"),
        render(pl.col("rejected_messages")).alias("rejected"),
        pl.lit(rules.domain).alias("domain"),
        pl.when(human.fill_null(False)).then(pl.lit("human")).otherwise(pl.lit("synthetic")).alias("source"),
        pl.col("chosen_value").alias("chosen_score"),
        pl.col("rejected_value").alias("rejected_score"),
        "origin_uri", "origin_sha256", "origin_row",
        "context", "chosen_messages", "rejected_messages",
        pl.lit(kind).alias("kind"),
        "tools",
        "task_group",
        pl.struct(
            "task_id", "env_key",
            pl.col("chosen_id").alias("chosen_trajectory_id"),
            pl.col("rejected_id").alias("rejected_trajectory_id"),
            pl.col("divergence_step").cast(pl.Int32),
            pl.col("chosen_value").alias("chosen_outcome"),
            pl.col("rejected_value").alias("rejected_outcome"),
        ).alias("trajectory"),
    )
    frame = with_record_id(frame) if frame.height else frame.with_columns(record_id=pl.lit(None, dtype=pl.String))
    repeated = frame.filter(pl.int_range(pl.len()).over("record_id") > 0).get_column("pair")
    if repeated.len():
        cand = cand.with_columns(drop=pl.when(pl.col("pair").is_in(repeated.implode())).then(pl.lit("duplicate_row")).otherwise(pl.col("drop")))
        frame = frame.filter(~pl.col("pair").is_in(repeated.implode()))
    return conform(frame), cand
