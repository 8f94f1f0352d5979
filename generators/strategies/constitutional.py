"""Constitutional: an answer is critiqued against a seeded principle and revised; chosen = revision, rejected = original."""

from __future__ import annotations

from typing import Any

from prefmix.generators.client import RequestFailed
from prefmix.generators.pairing import pick_revision, seeded_choice
from prefmix.generators.strategies.base import (
    Candidates, Context, Outcome, Tally, over_length, prompt_salt, reject, rng_for, settle, truncation,
)


async def run(ctx: Context, row: dict[str, Any]) -> Outcome:
    if (too_long := over_length(ctx, row)) is not None:
        return too_long
    assert ctx.constitution is not None
    tally = Tally()
    rng = rng_for(ctx, row, "constitutional")
    principle = seeded_choice(ctx.constitution.principles, rng)
    teacher = seeded_choice(ctx.extra["teachers"], rng)
    critic = ctx.config.judge_teacher().name
    salt = prompt_salt(row)
    t = ctx.templates
    try:
        original = await ctx.ask(teacher, ctx.answer_payload(t.messages("answer", prompt=row["prompt"]), f"{salt}:answer"), f"{salt}:answer", tally)
        if not original.content.strip():
            return reject(ctx, row, "empty_response", "original answer is empty", tally)
        fill = {"prompt": row["prompt"], "response": original.content, "principle": principle.critique}
        critique = await ctx.ask(critic, ctx.answer_payload(t.messages("critique", **fill), f"{salt}:critique"), f"{salt}:critique", tally)
        if not critique.content.strip():
            return reject(ctx, row, "empty_response", "critique is empty", tally)
        revise = t.messages("revise", **fill, revision=principle.revision, critique=critique.content)
        revision = await ctx.ask(teacher, ctx.answer_payload(revise, f"{salt}:revise"), f"{salt}:revise", tally)
    except RequestFailed as exc:
        return reject(ctx, row, exc.reason, exc.detail, tally)
    cands = Candidates([original.content, revision.content], [teacher, teacher], [original.finish_reason, revision.finish_reason])
    pick = truncation(ctx, row, pick_revision(*cands.texts), cands)  # a revision cut at max_tokens is not "better"
    return settle(ctx, row, pick, cands, tally, judge=critic, principle_id=principle.id)
