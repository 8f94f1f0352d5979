"""Pointwise judge: candidates from the teachers, each scored 1-10 (JSON schema); chosen = best, rejected = worst."""

from __future__ import annotations

from typing import Any

from prefmix.generators.client import RequestFailed
from prefmix.generators.pairing import parse_score, pick_pointwise
from prefmix.generators.strategies.base import (
    SCORE_SCHEMA, Context, Outcome, Tally, candidates, failure_reason, over_length, prompt_salt, reject, rng_for, settle,
    verdicts,
)


async def score(ctx: Context, judge: str, prompt: str, texts: list[str], salt: str, tally: Tally) -> tuple[list[float | None], list[RequestFailed]]:
    """Judge scores of each text (None when the request failed or the output did not parse)."""
    calls = [
        (judge, ctx.judge_payload(ctx.templates.messages("judge_pointwise", prompt=prompt, response=t), SCORE_SCHEMA, "score"), f"{salt}:score:{i}")
        for i, t in enumerate(texts)
    ]
    results = await ctx.ask_many(calls, tally)
    return verdicts(results, parse_score, tally), [r for r in results if isinstance(r, RequestFailed)]


async def run(ctx: Context, row: dict[str, Any]) -> Outcome:
    if (too_long := over_length(ctx, row)) is not None:
        return too_long
    tally = Tally()
    got = await candidates(ctx, row, tally)
    if isinstance(got, Outcome):
        return got
    texts, teachers = got
    judge = ctx.config.judge_teacher().name
    scores, failed = await score(ctx, judge, row["prompt"], texts, prompt_salt(row), tally)
    if sum(s is not None for s in scores) < 2 and failed:
        reason, detail = failure_reason(failed)
        return reject(ctx, row, reason, f"{len(failed)} of {len(texts)} judge requests failed: {detail}", tally)
    pick = pick_pointwise(texts, scores, ctx.gen.min_margin, rng_for(ctx, row, "pointwise"))
    return settle(ctx, row, pick, texts, teachers, tally, judge=judge)
