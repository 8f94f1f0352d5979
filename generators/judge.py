"""Re-judge existing (prompt, chosen, rejected) pairs with the configured judge (judge-vs-human calibration)."""

from __future__ import annotations

import asyncio
from typing import Any

import polars as pl

from prefmix.config import Config
from prefmix.errors import ConfigError, InputError

from prefmix.generators.client import ChatClient, ErrorWindow, resolve_api_key
from prefmix.generators.pairing import NoPair, pick_pairwise, same_text, vote_winner
from prefmix.generators.strategies import Context, Tally
from prefmix.generators.strategies.pairwise import compare
from prefmix.generators.strategies.pointwise import score
from prefmix.generators.templates import load_templates

PAIR_COLUMNS = ("record_id", "prompt", "chosen", "rejected")


async def _verdict(ctx: Context, judge: str, mode: str, row: dict[str, Any]) -> str | None:
    chosen, rejected = row["chosen"], row["rejected"]
    if same_text(chosen, rejected):
        return None
    tally, salt = Tally(), f"judge:{row['record_id']}"
    if mode == "pairwise":
        first, swapped, _ = await compare(ctx, judge, row["prompt"], chosen, rejected, salt, tally)
        pick = pick_pairwise([chosen, rejected], first, swapped)
        return None if isinstance(pick, NoPair) else ("chosen" if pick.chosen == 0 else "rejected")
    (a, b), _ = await score(ctx, judge, row["prompt"], [chosen, rejected], [f"{salt}:score:0", f"{salt}:score:1"], tally)
    # the rule pairs are made by: integers, ties broken by expected scores when the config says so
    winner = vote_winner((a.score, a.expected), (b.score, b.expected), ctx.expected_margin)
    return None if winner in (None, "tie") else winner


async def _judge_all(config: Config, rows: list[dict[str, Any]], endpoints: list[str]) -> list[str | None]:
    judge = config.judge_teacher()
    mode = "pairwise" if config.generation.strategy == "pairwise" else "pointwise"
    errors = ErrorWindow(config.generation.error_budget)
    async with ChatClient(judge, endpoints, config.generation.retry, errors, resolve_api_key(judge)) as client:
        ctx = Context(config, "judge-pairs", load_templates(config.generation.template), None, {judge.name: client},
                      cache=None, vllm_version="")
        active = asyncio.Semaphore(2 * client.limit)

        async def one(row: dict[str, Any]) -> str | None:
            async with active:
                return await _verdict(ctx, judge.name, mode, row)

        return list(await asyncio.gather(*(one(r) for r in rows)))


def judge_pairs(config: Config, pairs: pl.DataFrame, teachers: dict[str, list[str]] | None = None) -> pl.DataFrame:
    """record_id + judge_prefers in {"chosen", "rejected", None} (None: tie, unparseable, failed or inconsistent).

    Uses the pairwise judge (both orders) when generation.strategy is pairwise, else pointwise scores.
    """
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise InputError(f"judge_pairs: missing column {missing[0]!r}; expected {list(PAIR_COLUMNS)}")
    judge = config.judge_teacher()
    endpoints = (teachers or {}).get(judge.name) or judge.endpoints
    if not endpoints:
        raise ConfigError(f"teachers.{judge.name}: no endpoints for the judge")
    rows = pairs.select(PAIR_COLUMNS).to_dicts()
    verdicts = asyncio.run(_judge_all(config, rows, list(endpoints))) if rows else []
    return pl.DataFrame(
        {"record_id": [r["record_id"] for r in rows], "judge_prefers": verdicts},
        schema={"record_id": pl.String, "judge_prefers": pl.String},
    )
