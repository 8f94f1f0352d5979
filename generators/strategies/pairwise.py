"""Pairwise judge: two candidates compared in both orders; kept only when the verdicts agree after undoing the swap.

The primary judge decides (DESIGN.md: a judge that disagrees with itself across the orders gives no pair).
Every other judge of `generation.judges` then compares the decided pair in both orders too; every reading goes
to generation.judge_votes with its order ("ab": chosen shown first) and its winner in chosen/rejected terms.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefmix.generators.client import RequestFailed
from prefmix.generators.pairing import NoPair, Winner, parse_winner, pick_pairwise
from prefmix.generators.strategies.base import (
    WINNER_SCHEMA, Context, Outcome, Tally, failure_reason, judgeable, prompt_salt, reject, rng_for, settle, truncation,
    verdicts, vote,
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


def order_votes(judge: str, first: Winner | None, swapped: Winner | None, chosen: int) -> list[dict[str, Any]]:
    """The two readings of candidates 0 and 1 (`first`: 0 shown as A; `swapped`: 1 shown as A) in the terms of the
    decided pair, whose chosen is candidate `chosen`."""
    out = []
    for shown_first, verdict in ((0, first), (1, swapped)):
        order = "ab" if shown_first == chosen else "ba"
        if verdict is None or verdict == "tie":
            winner = None if verdict is None else "tie"
        else:
            won = shown_first if verdict == "A" else 1 - shown_first
            winner = "chosen" if won == chosen else "rejected"
        out.append(vote(judge, order, winner))
    return sorted(out, key=lambda v: v["order"])  # "ab" first, whichever candidate was shown first


async def run(ctx: Context, row: dict[str, Any]) -> Outcome:
    tally = Tally()
    # which two candidates, and which is shown first
    got = await judgeable(ctx, row, tally, lambda c: c.take(rng_for(ctx, row, "pairwise").sample(range(len(c.texts)), 2)))
    if isinstance(got, Outcome):
        return got
    primary, *others = ctx.judges
    salt = prompt_salt(row)
    first, swapped, failed = await compare(ctx, primary, row["prompt"], got.texts[0], got.texts[1], salt, tally)
    if failed:
        reason, detail = failure_reason(failed)
        return reject(ctx, row, reason, f"{len(failed)} of 2 judge requests failed: {detail}", tally)
    pick = truncation(ctx, row, pick_pairwise(got.texts, first, swapped), got)
    if isinstance(pick, NoPair):
        return settle(ctx, row, pick, got, tally, judge=primary)
    votes = order_votes(primary, first, swapped, pick.chosen)
    chosen, rejected = got.texts[pick.chosen], got.texts[pick.rejected]
    extra = await asyncio.gather(*(compare(ctx, judge, row["prompt"], chosen, rejected, f"{salt}:{judge}", tally) for judge in others))
    for judge, (a, b, _) in zip(others, extra):
        votes += order_votes(judge, a, b, 0)
    return settle(ctx, row, pick, got, tally, judge=primary, votes=votes)
