"""Cross-source dedup before sampling: exact record_id duplicates, then duplicate prompts. Human wins."""

from __future__ import annotations

from typing import Any

import polars as pl

from prefmix.records import KINDS, SOURCES

# Who wins a collision: human before synthetic, then the row the seeded sample would take first,
# then input order (only reached by exact copies of one record).
PRIORITY = ["synthetic", "sample_key", "rid_lo", "file", "row"]


def _drop_duplicates(keys: pl.DataFrame, by: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    # Sort by the key, then by priority: the first row of each run of equal keys wins. Comparing
    # neighbours needs no hash table, which keeps memory at about one extra copy of the key frame.
    ordered = keys.sort([*by, *PRIORITY])
    first = pl.any_horizontal(*[pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by])
    marked = ordered.with_columns(_keep=first).with_columns(
        _winner_synthetic=pl.when("_keep").then(pl.col("synthetic")).otherwise(None).forward_fill()
    )
    removed = marked.filter(~pl.col("_keep")).select("synthetic", "_winner_synthetic")
    counts = {
        "removed": removed.height,
        "within_source": removed.filter(pl.col("synthetic") == pl.col("_winner_synthetic")).height,
        "cross_source": removed.filter(pl.col("synthetic") != pl.col("_winner_synthetic")).height,
        "human": removed.filter(~pl.col("synthetic")).height,
        "synthetic": removed.filter(pl.col("synthetic")).height,
    }
    del ordered
    return marked.filter(pl.col("_keep")).drop("_keep", "_winner_synthetic"), counts


def dedup(keys: pl.DataFrame, prompts: bool) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Keep one row per record_id and (if `prompts`) one per normalized prompt; count what went and why.

    Prompt dedup applies to single-turn rows: the pairs of one agent task share their prompt (the task) by
    design, so trajectory and step pairs are deduplicated by record_id only."""
    kept, by_id = _drop_duplicates(keys, ["rid_hi", "rid_lo"])
    by_prompt = {"removed": 0, "within_source": 0, "cross_source": 0, "human": 0, "synthetic": 0}
    if prompts:
        single = pl.col("kind") == KINDS[0]
        kept = kept.with_columns(
            _dk_hi=pl.when(single).then(pl.col("pk_hi")).otherwise(pl.col("rid_hi")),
            _dk_lo=pl.when(single).then(pl.col("pk_lo")).otherwise(pl.col("rid_lo")),
        )
        kept, by_prompt = _drop_duplicates(kept, ["_dk_hi", "_dk_lo"])
        kept = kept.drop("_dk_hi", "_dk_lo")
    summary: dict[str, Any] = {
        "exact_record_id": by_id["removed"],
        "duplicate_prompt": by_prompt["removed"],
        "within_source": by_id["within_source"] + by_prompt["within_source"],
        "cross_source": by_id["cross_source"] + by_prompt["cross_source"],
        "by_source": {
            source: {"exact_record_id": by_id[source], "duplicate_prompt": by_prompt[source]}
            for source in SOURCES
        },
        "prompts_deduplicated": prompts,
    }
    return kept, summary
