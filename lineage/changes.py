"""What a version changed against the version it was built on: every added and removed row, with its reason.

Written into the staged batch as lineage/changes.parquet before the manifest (which holds its sha256), so the
ledger indexes a version by reading only its changes (O(change), not O(version)), and `lineage diff` can say
why each row came or went:

    added    new_delivery  its delivery (vendor shard, or prompt file of a synthetic pair) arrived tonight
             regenerated   a synthetic pair of an older prompt, made tonight (new fingerprint, --regenerate)
             quota_change  it was in the pool before and the mix took it now
    removed  retraction:<id>, window, superseded (its pairs were remade), duplicate_prompt (the mix kept another
             pair of the same prompt: dedup prefers human, then one per prompt), quota_change (the mix left it out)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from prefmix.contract import Changes
from prefmix.hashing import sha256_file
from prefmix.lineage.ledger import CHANGE_SCHEMA
from prefmix.store import write_parquet

CHANGES = "lineage/changes.parquet"
KEY = ["record_id", "origin_sha256", "origin_row"]


@dataclass
class Reasons:
    """What the version plan knows about why rows came or went (lineage/versions.py builds it)."""

    new_deliveries: set[str] = field(default_factory=set)  # sha256 of deliveries ingested tonight
    new_runs: set[str] = field(default_factory=set)  # generation runs whose pairs entered the pool tonight
    dropped_deliveries: dict[str, str] = field(default_factory=dict)  # delivery sha256 -> reason its rows left
    dropped_runs: dict[str, str] = field(default_factory=dict)  # run id -> reason its pairs left
    excluded: pl.DataFrame | None = None  # KEY + reason: single rows left out (retractions of annotators, teachers)


def keys(batch_dir: Path, paths: list[str]) -> pl.DataFrame:
    """Every row of a batch's data files with the lineage the ledger stores, and where it sits (file_no, file_row)."""
    gen, ann = pl.col("generation"), pl.col("annotation")
    frames = [
        pl.scan_parquet(Path(batch_dir) / path).select(
            "record_id", "origin_uri", "origin_sha256", "origin_row", "source", "domain",
            gen.struct.field("run_id").alias("run_id"), gen.struct.field("fingerprint").alias("fingerprint"),
            gen.struct.field("teacher").alias("teacher"), gen.struct.field("judge").alias("judge"),
            ann.struct.field("vendor").alias("vendor"), gen.struct.field("teacher_models").alias("models"),
            ann.struct.field("annotator_ids").alias("annotator_ids"), _normalized(pl.col("prompt")).alias("prompt_norm"),
            pl.lit(file_no, pl.Int64).alias("file_no"), pl.int_range(pl.len(), dtype=pl.Int64).alias("file_row"),
        ).collect()
        for file_no, path in enumerate(paths)
    ]
    empty = pl.DataFrame(schema={**{k: v for k, v in CHANGE_SCHEMA.items() if k not in ("change", "reason")}, "prompt_norm": pl.String})
    return pl.concat(frames, how="vertical_relaxed") if frames else empty


def _normalized(text: pl.Expr) -> pl.Expr:
    """Whitespace-collapsed prompt text: enough to see that the mix kept another pair of the same prompt."""
    return text.str.replace_all(r"\s+", " ").str.strip_chars()


def _framed(frame: pl.DataFrame, change: str) -> pl.DataFrame:
    frame = frame.with_columns(pl.lit(change).alias("change"))
    return frame.select([
        (pl.col(name) if name in frame.columns else pl.lit(None, dtype)).cast(dtype).alias(name) for name, dtype in CHANGE_SCHEMA.items()
    ])


def all_added(batch_dir: Path, paths: list[str], reason: str = "batch") -> pl.DataFrame:
    """A batch outside any dataset (or a first version): every row is added."""
    return _framed(keys(batch_dir, paths).with_columns(pl.lit(reason).alias("reason")), "added")


def version_changes(staged: Path, paths: list[str], base: Path | None, base_paths: list[str], why: Reasons) -> pl.DataFrame:
    """Added and removed rows of the staged version against its base version, each with its reason."""
    new = keys(staged, paths)
    old = keys(base, base_paths) if base is not None else new.clear()
    added = new.join(old.select(KEY), on=KEY, how="anti").with_columns(
        pl.when(pl.col("origin_sha256").is_in(sorted(why.new_deliveries)))
        .then(pl.lit("new_delivery"))
        .when(pl.col("run_id").is_in(sorted(why.new_runs)))
        .then(pl.lit("regenerated"))
        .otherwise(pl.lit("quota_change"))
        .alias("reason")
    )
    removed = old.join(new.select(KEY), on=KEY, how="anti")
    excluded = why.excluded if why.excluded is not None and why.excluded.height else pl.DataFrame(
        schema={"record_id": pl.String, "origin_sha256": pl.String, "origin_row": pl.Int64, "reason": pl.String})
    removed = removed.join(excluded.unique(KEY, keep="first").rename({"reason": "row_reason"}), on=KEY, how="left")
    by_delivery = pl.DataFrame({"origin_sha256": list(why.dropped_deliveries), "delivery_reason": list(why.dropped_deliveries.values())},
                               schema={"origin_sha256": pl.String, "delivery_reason": pl.String})
    by_run = pl.DataFrame({"run_id": list(why.dropped_runs), "run_reason": list(why.dropped_runs.values())},
                          schema={"run_id": pl.String, "run_reason": pl.String})
    removed = (
        removed.join(by_delivery, on="origin_sha256", how="left").join(by_run, on="run_id", how="left")
        .with_columns(pl.coalesce("row_reason", pl.when(pl.col("run_id").is_null()).then(pl.col("delivery_reason")),
                                  "run_reason",
                                  pl.when(pl.col("prompt_norm").is_in(new["prompt_norm"].unique().to_list())).then(pl.lit("duplicate_prompt")),
                                  pl.lit("quota_change")).alias("reason"))
    )
    return pl.concat([_framed(added, "added"), _framed(removed, "removed")], how="vertical")


def write_changes(staged: Path, frame: pl.DataFrame) -> Changes:
    """lineage/changes.parquet in the staged batch, and its summary for the manifest."""
    path = write_parquet(frame.sort("change", "record_id", "origin_sha256", "origin_row").to_arrow(), Path(staged) / CHANGES)
    counts = frame.group_by("change", "reason").len().sort("change", "reason")
    by_reason: dict[str, dict[str, int]] = {"added": {}, "removed": {}}
    for change, reason, n in counts.iter_rows():
        by_reason[change][reason] = int(n)
    return Changes(path=CHANGES, sha256=sha256_file(path), added=sum(by_reason["added"].values()),
                   removed=sum(by_reason["removed"].values()), by_reason=by_reason)
