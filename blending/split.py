"""Train/eval assignment by a stable hash of the normalized prompt (of the task group, for agent rows).

A row is eval when the first 64 bits of its split key read as an unsigned
integer are below eval_fraction * 2**64. The split key is the prompt key
(sha256 of the normalized prompt, `prefmix.records.prompt_key`), or for a row
with a `task_group` sha256 of the task group, so every pair derived from one
agent task (whole runs, single steps) lands in the same split. The assignment depends on nothing but the
prompt text and eval_fraction: not on ratios, seed, size or which other rows
were picked, so a row never changes split between runs, and two pairs that
share a prompt always land in the same split (no eval prompt leaks into train).
"""

from __future__ import annotations

from fractions import Fraction

import polars as pl

from prefmix.blending.quotas import exact


def threshold(eval_fraction: float) -> int:
    """Prompt keys (first 64 bits) below this number are eval."""
    return int(exact(eval_fraction) * Fraction(2**64))


def is_eval_key(prompt_key_hex: str, eval_fraction: float) -> bool:
    """The rule in plain Python, for anyone checking a row: int(prompt_key[:16], 16) < threshold."""
    return int(prompt_key_hex[:16], 16) < threshold(eval_fraction)


def eval_expr(eval_fraction: float, column: str = "sk_hi") -> pl.Expr:
    limit = threshold(eval_fraction)
    if limit >= 2**64:
        return pl.lit(True)
    return pl.col(column) < pl.lit(limit, dtype=pl.UInt64)
