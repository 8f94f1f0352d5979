"""A check's measurement (`Measure`) and the sample rows that show a person what failed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import polars as pl

EXCERPT = 160  # characters of a text shown in a sample


@dataclass(frozen=True)
class Measure:
    """One check's number and the bounds it must lie within (None = unbounded)."""

    name: str
    value: float | None  # None: not applicable to this batch (counts as passed)
    min_value: float | None = None
    max_value: float | None = None
    observed: Any = None  # richer detail for humans (dicts, lists)
    note: str = ""
    description: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expected(self) -> str:
        if self.min_value is not None and self.max_value is not None:
            return f"between {self.min_value:g} and {self.max_value:g}"
        if self.min_value is not None:
            return f">= {self.min_value:g}"
        return f"<= {self.max_value:g}"


def visible(text: str | None) -> str | None:
    """Control characters and U+FFFD spelled out (\\x07, \\ufffd): a sample must show what is wrong."""
    if text is None:
        return None
    return "".join(
        c if (c.isprintable() or c in "\n\t ") and c != "\ufffd" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def excerpt(text: str | None, find: str | None = None, width: int = EXCERPT) -> str | None:
    """About `width` characters of text, centred on the first match of `find` when given."""
    if text is None:
        return None
    start = 0
    if find:
        try:
            hit = re.search(find.replace(r"\z", r"\Z"), text)
        except re.error:
            hit = None
        if hit:
            start = max(0, hit.start() - width // 3)
    cut = text[start : start + width]
    return ("…" if start else "") + (visible(cut) or "") + ("…" if start + width < len(text) else "")


def flagged_samples(df: pl.DataFrame, mask: pl.Expr, fields: Sequence[str], keep: int,
                    find: str | None = None) -> list[dict[str, Any]]:
    """The first `keep` rows where mask holds: record id, source, domain and an excerpt of each field."""
    if keep <= 0:
        return []
    rows = df.filter(mask).head(keep).select("record_id", "source", "domain", *fields)
    return [
        {"record_id": r["record_id"], "source": r["source"], "domain": r["domain"],
         **{f: excerpt(r[f], find) for f in fields}}
        for r in rows.iter_rows(named=True)
    ]


def rows_samples(df: pl.DataFrame, rows: Sequence[int], fields: Sequence[str], keep: int,
                 find: str | None = None) -> list[dict[str, Any]]:
    """flagged_samples for rows already found (row numbers, ascending): the first `keep` of them."""
    if keep <= 0:
        return []
    picked = df[[int(r) for r in rows[:keep]]]
    return flagged_samples(picked, pl.lit(True), fields, keep, find)
