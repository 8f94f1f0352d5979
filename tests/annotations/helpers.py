"""Small builders shared by the annotation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

PROMPT = "How do I {}?"


def judgment_rows(table: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """(item, annotator, preference, review_pass, is_gold, gold_answer, adjudicated_label) -> full judgment rows."""
    rows = []
    for item, annotator, preference, review_pass, is_gold, gold_answer, adjudicated in table:
        rows.append(
            {
                "item_id": item,
                "prompt": PROMPT.format(item),
                "domain": "finance" if item.endswith(("1", "3", "5", "7", "9")) else "law",
                "response_a": f"Detailed answer A for {item}, with specific steps.",
                "response_b": f"Vague answer B for {item}.",
                "annotator_id": annotator,
                "preference": preference,
                "review_pass": review_pass,
                "is_gold": is_gold,
                "gold_answer": gold_answer,
                "adjudicated_label": adjudicated,
            }
        )
    return rows


JUDGMENT_TYPES = {"gold_answer": pl.String, "adjudicated_label": pl.String, "review_pass": pl.Int64, "is_gold": pl.Boolean}


def write(rows: list[dict[str, Any]], path: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write rows with polars; `overrides` pins types of columns that may be all-null."""
    types = {k: v for k, v in (overrides or {}).items() if rows and k in rows[0]}
    pl.DataFrame(rows, schema_overrides=types).write_parquet(path)
    return path
