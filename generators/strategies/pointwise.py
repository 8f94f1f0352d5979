"""Pointwise judge: candidates from the teachers, each scored 1-10 (JSON schema); chosen = best, rejected = worst.

The primary judge's scores decide the pair: integers first, ties broken by its expected score (the
probability-weighted score over the score tokens, G-Eval style) when `generation.tie_break: expected`. Every
other judge of `generation.judges` then scores the chosen and the rejected; all readings, the primary's
included, go to generation.judge_votes. A pointwise judge sees one response at a time, so there is no
presentation order to vary: each judge gives one reading per pair, recorded as order "ab".
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefmix.generators.client import RequestFailed
from prefmix.generators.pairing import NoPair, pick_pointwise, vote_winner
from prefmix.generators.strategies.base import (
    SCORE_SCHEMA, Context, Outcome, Reading, Tally, failure_reason, judgeable, prompt_salt, reading, reject, rng_for,
    settle, vote,
)


async def score(ctx: Context, judge: str, prompt: str, texts: list[str], salts: list[str],
                tally: Tally) -> tuple[list[Reading], list[RequestFailed]]:
    """The judge's reading of each text (score None when the request failed or the output did not parse)."""
    calls = [
        (judge, ctx.judge_payload(ctx.templates.messages("judge_pointwise", prompt=prompt, response=t), SCORE_SCHEMA,
                                  "score", logprobs=True), salt)
        for t, salt in zip(texts, salts)
    ]
    results = await ctx.ask_many(calls, tally)
    return [reading(r, tally) for r in results], [r for r in results if isinstance(r, RequestFailed)]


def pair_vote(ctx: Context, judge: str, chosen: Reading, rejected: Reading) -> dict[str, Any]:
    winner = vote_winner((chosen.score, chosen.expected), (rejected.score, rejected.expected), ctx.expected_margin)
    return vote(judge, "ab", winner, chosen.score, rejected.score)


async def run(ctx: Context, row: dict[str, Any]) -> Outcome:
    tally = Tally()
    got = await judgeable(ctx, row, tally)
    if isinstance(got, Outcome):
        return got
    primary, *others = ctx.judges
    salt = prompt_salt(row)
    readings, failed = await score(ctx, primary, row["prompt"], got.texts, [f"{salt}:score:{i}" for i in range(len(got.texts))], tally)
    if sum(r.score is not None for r in readings) < 2 and failed:
        reason, detail = failure_reason(failed)
        return reject(ctx, row, reason, f"{len(failed)} of {len(got.texts)} judge requests failed: {detail}", tally)
    pick = pick_pointwise(got.texts, [r.score for r in readings], ctx.gen.min_margin, rng_for(ctx, row, "pointwise"),
                          [r.expected for r in readings], ctx.expected_margin, got.can_choose(ctx.keep_truncated))
    if isinstance(pick, NoPair):
        return settle(ctx, row, pick, got, tally, judge=primary)
    chosen, rejected = readings[pick.chosen], readings[pick.rejected]
    votes = [pair_vote(ctx, primary, chosen, rejected)]
    pair = [got.texts[pick.chosen], got.texts[pick.rejected]]
    # Other judges read only the decided pair: their votes are signals (routing), not part of the decision.
    extra = await asyncio.gather(*(
        score(ctx, judge, row["prompt"], pair, [f"{salt}:score:{judge}:chosen", f"{salt}:score:{judge}:rejected"], tally)
        for judge in others
    ))
    votes += [pair_vote(ctx, judge, *got_readings) for judge, (got_readings, _) in zip(others, extra)]
    return settle(ctx, row, pick, got, tally, judge=primary, expected=(chosen.expected, rejected.expected), votes=votes)
