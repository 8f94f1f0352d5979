"""A trajectory judge: the teacher reads a whole run and says how good it is and where it first went wrong.

    verdicts = judge_trajectories(frame, base_url, model)          # one row per trajectory
    figures = judge_step_agreement(verdicts, human_rows)           # against people's first-error step labels

The run is shown as render.py renders it (the text every derived row holds), each step under a
`[step N]` header; the reply is constrained (vLLM structured outputs, the `response_format` the
generators' judges send) to {"score": 1..10, "first_wrong_step": one of the run's agent steps | null}.
A reply that does not parse into that is a counted parse error; a failed request is counted too;
neither takes a neighbour's verdict with it. The judge is not shown the outcome: it reads the run.

Agreement with people, on the steps they labelled (human_labels: derive(..., "labels", reviews=...)
rows, TRL's PRM layout, labels by the first-error rule): the judge's first wrong step f gives, by
the same rule, label true to agent steps before f, false to f, and no label after f (nor anything
when it gave no verdict). Per step: judged / unjudged / agree / disagree / share as judge_human
counts pairs (annotations.calibration), and Cohen's kappa over the judged steps. Per trajectory:
whether the first error within the labelled steps is the same step (or absent for both).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import polars as pl

from prefmix.config import ErrorBudget, Retry, Teacher
from prefmix.contract import Contract
from prefmix.errors import InputError
from prefmix.generators.client import ChatClient, ErrorWindow, RequestFailed
from prefmix.generators.vllm_server import VLLMServerError
from prefmix.hashing import sha256_json
from prefmix.trajectories.render import render
from prefmix.trajectories.steps import message_table, step_table

SCORES = list(range(1, 11))
VERDICT_SCHEMA = {
    "trajectory_id": pl.String, "score": pl.Int64, "first_wrong_step": pl.Int32, "parse_error": pl.Boolean, "error": pl.String,
}
JUDGE_PROMPT = (
    "You grade an AI agent's attempt at a task. The steps of the attempt are numbered. "
    "Reply with JSON: score from 1 (useless) to 10 (correct and direct), and first_wrong_step: "
    "the number of the first assistant step that is a mistake, or null when no step is wrong."
)


def rendered(frame: pl.DataFrame) -> pl.DataFrame:
    """Per trajectory: text (every step rendered under `[step N]`) and agent_steps (their idx, in order)."""
    steps = step_table(frame)
    per_step = (
        message_table(steps).sort("trajectory_id", "pos", "mpos")
        .group_by("trajectory_id", "pos", maintain_order=True).agg(pl.col("message").alias("messages"))
        .join(steps.select("trajectory_id", "pos", "idx", "is_agent"), on=["trajectory_id", "pos"])
        .with_columns(text=pl.format("[step {}]\n{}", pl.col("idx"), render(pl.col("messages"))))
        .sort("trajectory_id", "pos")
    )
    agent_idx = pl.when(pl.col("is_agent")).then(pl.col("idx"))
    out = per_step.group_by("trajectory_id", maintain_order=True).agg(
        pl.col("text").str.join("\n"), agent_idx.drop_nulls().cast(pl.Int64).alias("agent_steps"),
    )
    return frame.select("trajectory_id").join(out, on="trajectory_id", how="left", maintain_order="left")


def verdict_schema(agent_steps: list[int]) -> dict[str, Any]:
    """The reply grammar for one run: first_wrong_step may only name one of its agent steps."""
    step = {"anyOf": [{"type": "integer", "enum": agent_steps}, {"type": "null"}]} if agent_steps else {"type": "null"}
    return {
        "type": "object",
        "properties": {"score": {"type": "integer", "enum": SCORES}, "first_wrong_step": step},
        "required": ["score", "first_wrong_step"],
        "additionalProperties": False,
    }


def parse_verdict(text: str, agent_steps: list[int]) -> tuple[int, int | None] | None:
    """(score, first_wrong_step) from a reply, None when it is not a verdict on this run."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    score, step = data.get("score"), data.get("first_wrong_step")
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        return None
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step not in agent_steps):
        return None
    return score, step


def judge_trajectories(
    frame: pl.DataFrame, base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.0,
    max_tokens: int = 48, seed: int = 0, concurrency: int = 16, progress: Callable[[int, int], None] | None = None,
) -> pl.DataFrame:
    """One verdict row per trajectory of `frame` (VERDICT_SCHEMA): score and first_wrong_step, or parse_error /
    error ("unparseable" | "request_failed"). Raises VLLMServerError (exit 3) when no request succeeded."""
    views = rendered(frame).to_dicts()
    results = asyncio.run(_judge_all(views, base_url.rstrip("/"), model, api_key, temperature, max_tokens, seed, concurrency, progress))
    if views and all(isinstance(r, RequestFailed) for r in results):
        raise VLLMServerError(f"judge {model!r} at {base_url}: no request succeeded ({len(results)} trajectories); last error: {results[-1]}")
    rows = []
    for view, result in zip(views, results):
        verdict = None if isinstance(result, RequestFailed) else parse_verdict(result, view["agent_steps"])
        error = "request_failed" if isinstance(result, RequestFailed) else ("unparseable" if verdict is None else None)
        rows.append({
            "trajectory_id": view["trajectory_id"], "score": verdict[0] if verdict else None,
            "first_wrong_step": verdict[1] if verdict else None, "parse_error": error == "unparseable", "error": error,
        })
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA)


async def _judge_all(views: list[dict[str, Any]], base_url: str, model: str, api_key: str | None, temperature: float,
                     max_tokens: int, seed: int, concurrency: int, progress: Callable[[int, int], None] | None) -> list[str | RequestFailed]:
    teacher = Teacher(name="trajectory-judge", model=model, endpoints=[base_url], max_in_flight=concurrency)
    done = 0
    async with ChatClient(teacher, [base_url], Retry(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0), ErrorWindow(ErrorBudget()), api_key) as client:

        async def one(view: dict[str, Any]) -> str | RequestFailed:
            nonlocal done
            payload = {
                "messages": [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": f"{view['text']}\n\nGrade this attempt."}],
                "temperature": temperature, "max_tokens": max_tokens,
                "seed": int(sha256_json([seed, view["trajectory_id"]])[:8], 16) & 0x7FFFFFFF,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "trajectory_verdict", "schema": verdict_schema(view["agent_steps"]), "strict": True}},
            }
            try:
                reply: str | RequestFailed = (await client.chat(payload)).content
            except RequestFailed as exc:
                reply = exc
            done += 1
            if progress is not None:
                progress(done, len(views))
            return reply

        return list(await asyncio.gather(*(one(v) for v in views)))


# -- agreement with people -------------------------------------------------------------------------


class StepAgreement(Contract):
    """How the judge's first wrong step agrees with people's first-error step labels (see the module doc)."""

    steps: int  # human-labelled steps
    judged: int  # of those, steps the judge's verdict labels
    unjudged: int
    agree: int
    disagree: int
    share: float | None = None  # agree / judged
    kappa: float | None = None  # Cohen's kappa over judged steps (None when chance agreement is 1)
    trajectories: int = 0  # human-labelled trajectories
    trajectories_judged: int = 0  # of those, with a verdict
    first_error_agree: int = 0
    first_error_share: float | None = None  # first_error_agree / trajectories_judged
    judge_parse_errors: int = 0  # over the whole verdict frame


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def cohen_kappa(a: pl.Series, b: pl.Series) -> float | None:
    """Cohen's kappa of two boolean label series (same length, no nulls); None when chance agreement is 1."""
    n = a.len()
    if n == 0:
        return None
    observed = float((a == b).sum()) / n
    pa, pb = float(a.sum()) / n, float(b.sum()) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    return None if chance >= 1.0 else (observed - chance) / (1 - chance)


def judge_step_agreement(judged: pl.DataFrame, human_labels: pl.DataFrame) -> StepAgreement:
    """judged: judge_trajectories rows; human_labels: PRM rows with trajectory_id, steps, labels."""
    for name, frame, columns in (("judge verdicts", judged, ("trajectory_id", "score", "first_wrong_step")),
                                 ("human step labels", human_labels, ("trajectory_id", "steps", "labels"))):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{name}: missing column {missing[0]!r}, expected {', '.join(columns)}")
    verdicts = judged.select("trajectory_id", "first_wrong_step", has=pl.col("score").is_not_null()).unique("trajectory_id", keep="last")
    human = (
        human_labels.select("trajectory_id", pl.col("steps").alias("step"), pl.col("labels").alias("human"))
        .explode("step", "human").drop_nulls("step").with_columns(pl.col("step").cast(pl.Int64))
    )
    f = pl.col("first_wrong_step")
    judge_label = (
        pl.when(~pl.col("has").fill_null(False)).then(pl.lit(None, dtype=pl.Boolean))
        .when(f.is_null() | (pl.col("step") < f)).then(pl.lit(True))
        .when(pl.col("step") == f).then(pl.lit(False))
    )
    steps = human.join(verdicts, on="trajectory_id", how="left").with_columns(judge=judge_label)
    both = steps.filter(pl.col("judge").is_not_null())
    agree = int((both.get_column("judge") == both.get_column("human")).sum())

    runs = steps.group_by("trajectory_id").agg(
        pl.col("step").filter(~pl.col("human")).min().alias("h"),  # the human first error (null: none labelled)
        pl.col("step").max().alias("last"), pl.col("has").first().fill_null(False), f.first(),
    )
    runs = runs.filter("has").with_columns(j=pl.when(f <= pl.col("last")).then(f.cast(pl.Int64)))
    same = int(runs.select(((pl.col("h") == pl.col("j")) | (pl.col("h").is_null() & pl.col("j").is_null())).sum()).item())
    parse_errors = int(judged.get_column("parse_error").sum()) if "parse_error" in judged.columns else 0
    return StepAgreement(
        steps=steps.height, judged=both.height, unjudged=steps.height - both.height, agree=agree, disagree=both.height - agree,
        share=_round(agree / both.height) if both.height else None,
        kappa=_round(cohen_kappa(both.get_column("judge"), both.get_column("human"))),
        trajectories=human_labels.get_column("trajectory_id").n_unique(), trajectories_judged=runs.height,
        first_error_agree=same, first_error_share=_round(same / runs.height) if runs.height else None,
        judge_parse_errors=parse_errors,
    )
