"""Pairwise judge: two candidates compared in both orders; kept only when the verdicts agree after undoing the swap."""

from __future__ import annotations

from typing import Any

from prefmix.generators.client import RequestFailed
from prefmix.generators.pairing import Winner, parse_winner, pick_pairwise
from prefmix.generators.strategies.base import (
    WINNER_SCHEMA, Context, Outcome, Tally, candidates, failure_reason, over_length, prompt_salt, reject, rng_for, settle,
    verdicts,
)


async def compare(ctx: Context, judge: str, prompt: str, a: str, b: str, salt: str, tally: Tally) -> tuple[Winner | None, Winner | None, list[RequestFailed]]:
    """Verdict with `a` shown first, and verdict with `b` shown first (in the judge's own A/B terms)."""
    calls = [
        (judge, ctx.judge_payload(ctx.templates.messages("judge_pairwise", prompt=prompt, response_a=x, response_b=y), WINNER_SCHEMA, "verdict"), f"{salt}:pair:{order}")
        for order, (x, y) in (("ab", (a, b)), ("ba", (b, a)))
    ]
    results = await ctx.ask_many(calls, tally)
    first, swapped = verdicts(results, parse_winner, tally)
    return first, swapped, [r for r in results if isinstance(r, RequestFailed)]


async def run(ctx: Context, row: dict[str, Any]) -> Outcome:
    if (too_long := over_length(ctx, row)) is not None:
        return too_long
    tally = Tally()
    got = await candidates(ctx, row, tally)
    if isinstance(got, Outcome):
        return got
    texts, teachers = got
    pair = rng_for(ctx, row, "pairwise").sample(range(len(texts)), 2)  # which two, and which is shown first
    texts, teachers = [texts[i] for i in pair], [teachers[i] for i in pair]
    judge = ctx.config.judge_teacher().name
    first, swapped, failed = await compare(ctx, judge, row["prompt"], texts[0], texts[1], prompt_salt(row), tally)
    if failed:
        reason, detail = failure_reason(failed)
        return reject(ctx, row, reason, f"{len(failed)} of 2 judge requests failed: {detail}", tally)
    return settle(ctx, row, pick_pairwise(texts, first, swapped), texts, teachers, tally, judge=judge)
