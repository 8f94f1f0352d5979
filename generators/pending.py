"""Which prompts still need generating under a generation fingerprint: the cost of a night follows the new prompts.

A prompt row (delivery sha256, row) is settled under a fingerprint once a run made under it turned the row into a
pair or a counted rejection; `covered` says which rows are settled, as [start, stop) ranges per delivery. A
delivery fully covered is not even read.
"""

from __future__ import annotations

import polars as pl

from prefmix.config import PromptSet

from prefmix.generators.prompts import PROMPT_SCHEMA, load_prompt_set


def covered_rows(ranges: list[tuple[int, int]]) -> int:
    """Rows in a set of [start, stop) ranges, overlaps counted once."""
    total, reach = 0, 0
    for start, stop in sorted(ranges):
        start = max(start, reach)
        if stop > start:
            total += stop - start
            reach = stop
    return total


def pending(deliveries: list[tuple[PromptSet, int]], covered: dict[str, list[tuple[int, int]]], domains: list[str],
            sha256: dict[str, str]) -> pl.DataFrame:
    """The prompt rows (prompt, domain, origin_uri, origin_sha256, origin_row) of `deliveries` (each with its row
    count) that no range in `covered` (delivery sha256 -> ranges) settles. `sha256` maps each file to its hash."""
    frames = []
    for prompt_set, rows in deliveries:
        ranges = covered.get(sha256[str(prompt_set.path)], [])
        if rows and covered_rows(ranges) >= rows:
            continue
        frame = load_prompt_set(prompt_set, domains)
        if ranges:
            done = pl.concat([pl.int_range(start, stop, dtype=pl.Int64, eager=True).alias("origin_row").to_frame()
                              for start, stop in ranges])
            frame = frame.join(done, on="origin_row", how="anti")
        frames.append(frame)
    return pl.concat(frames, how="vertical").cast(dict(PROMPT_SCHEMA)) if frames else pl.DataFrame(schema=PROMPT_SCHEMA)


def ranges_of(prompts: pl.DataFrame) -> list[tuple[str, int, int]]:
    """(sha256, start, stop) runs of consecutive rows: how a run's coverage is recorded compactly."""
    if prompts.is_empty():
        return []
    runs = (
        prompts.select("origin_sha256", "origin_row").unique().sort("origin_sha256", "origin_row")
        .with_columns(((pl.col("origin_row").diff().fill_null(1) != 1) | (pl.col("origin_sha256") != pl.col("origin_sha256").shift(1)))
                      .fill_null(True).cum_sum().alias("run"))
        .group_by("run", maintain_order=True)
        .agg(pl.col("origin_sha256").first(), pl.col("origin_row").min().alias("start"), (pl.col("origin_row").max() + 1).alias("stop"))
    )
    return [(sha, int(start), int(stop)) for _, sha, start, stop in runs.iter_rows()]
