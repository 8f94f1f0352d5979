"""The hook for items a check can verify: they go to the check, not to people.

A check is anything with a `name` that, called with candidate rows (record_id, prompt, chosen, rejected,
domain), returns one boolean per row: True where the check can verify the item (a math answer a regex
extracts, code a test can run). Two forms come from config (`routing.checks`):

- regex: the prompt matches `prompt` (if given) and both responses match `answer` (if given), in `domains`
  (if given). Patterns are Polars (Rust) regular expressions.
- function: `"package.module:callable"`, imported and called with the rows; it returns a bool Series or list.

Routing sets these items aside (`to_check`, with the check's name) instead of queueing them; running the check
is the checker's job.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from prefmix.config import RouteCheck
from prefmix.errors import ConfigError, InputError

COLUMNS = ("record_id", "prompt", "chosen", "rejected", "domain")


class Check(Protocol):
    name: str

    def __call__(self, rows: pl.DataFrame) -> pl.Series: ...


@dataclass(frozen=True)
class RegexCheck:
    name: str
    domains: tuple[str, ...]
    prompt: str | None
    answer: str | None

    def __call__(self, rows: pl.DataFrame) -> pl.Series:
        applies = pl.lit(True)
        if self.domains:
            applies = applies & pl.col("domain").is_in(list(self.domains))
        if self.prompt is not None:
            applies = applies & pl.col("prompt").str.contains(self.prompt)
        if self.answer is not None:
            applies = applies & pl.col("chosen").str.contains(self.answer) & pl.col("rejected").str.contains(self.answer)
        return rows.select(applies.fill_null(False).alias(self.name)).to_series()


@dataclass(frozen=True)
class FunctionCheck:
    name: str
    domains: tuple[str, ...]
    function: Callable[[pl.DataFrame], Any]

    def __call__(self, rows: pl.DataFrame) -> pl.Series:
        out = pl.Series(self.name, self.function(rows), dtype=pl.Boolean).fill_null(False)
        if out.len() != rows.height:
            raise InputError(f"routing.checks {self.name}: returned {out.len()} values for {rows.height} rows")
        if self.domains:
            out = out & rows.get_column("domain").is_in(list(self.domains))
        return out.alias(self.name)


def load(configs: list[RouteCheck]) -> list[Check]:
    """The configured checks, ready to call; a pattern Polars refuses or a function that does not import is a ConfigError."""
    checks: list[Check] = []
    for index, spec in enumerate(configs):
        where = f"routing.checks[{index}] ({spec.name})"
        if spec.function is not None:
            module, _, attr = spec.function.partition(":")
            try:
                function = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{where}: function {spec.function!r} cannot be imported ({exc})") from None
            checks.append(FunctionCheck(spec.name, tuple(spec.domains), function))
            continue
        for key in ("prompt", "answer"):
            pattern = getattr(spec, key)
            if pattern is not None:
                try:
                    pl.Series([""]).str.contains(pattern)
                except pl.exceptions.ComputeError as exc:
                    raise ConfigError(f"{where}: {key}: {pattern!r} is not a Polars regular expression ({exc})") from None
        checks.append(RegexCheck(spec.name, tuple(spec.domains), spec.prompt, spec.answer))
    return checks


def verifiable(rows: pl.DataFrame, checks: list[Check]) -> pl.Series:
    """Per row, the name of the first check that can verify it, else null."""
    found = pl.Series("check", [None] * rows.height, dtype=pl.String)
    if not checks or rows.height == 0:
        return found
    view = rows.select(COLUMNS)
    for check in checks:
        hit = check(view)
        found = pl.select(pl.when(found.is_null() & hit).then(pl.lit(check.name)).otherwise(found)).to_series().alias("check")
    return found
