"""A dataset's pool: every accepted record to date, as content-addressed files under store/pool/.

- human: one file per vendor delivery (its aggregated pairs), named by the delivery and the file's sha256;
- synthetic: one file per generation run (its pairs), with the prompt rows the run settled (coverage);
- agent: one file per night and source of trajectory and step pairs derived from agent runs (kind `agent`);
- filtered: a pool file less the rows that retractions in force select, named by the file and those
  retractions, so it is written once and reused by every later version while nothing changes.

Pool files are never rewritten: a version lists exactly the files it was blended from, so `lineage reproduce`
rebuilds it byte for byte after later nights and retractions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from prefmix.contract import PoolFile, PromptRange, Retraction
from prefmix.hashing import sha256_file, short_hash
from prefmix.records import to_arrow
from prefmix.store import Store, atomic_write_json, write_parquet

KEY = ["record_id", "origin_sha256", "origin_row"]


def _content_addressed(frame: pl.DataFrame, folder: Path, stem: str) -> tuple[Path, str]:
    """Write canonical records to folder/<stem>-<sha16>.parquet (same rows -> same name; an existing one is kept)."""
    tmp = write_parquet(to_arrow(frame), folder / f".{stem}.{os.getpid()}.parquet")
    sha = sha256_file(tmp)
    final = folder / f"{stem}-{sha[:16]}.parquet"
    if final.exists():
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return final, sha


def human_file(store: Store, delivery_sha: str, vendor: str, records: pl.DataFrame, day: str) -> PoolFile:
    """The accepted pairs of one vendor delivery."""
    path, sha = _content_addressed(records, store.pool_dir / "human", delivery_sha[:16])
    return PoolFile(path=str(path), sha256=sha, source="human", rows=records.height, day=day, deliveries=[delivery_sha], vendor=vendor)


def synthetic_file(store: Store, run_id: str, record_files: list[str], settled: list[tuple[str, int, int]], fingerprint: str,
                   teachers: list[str], day: str) -> PoolFile:
    """The pairs of one generation run, and the prompt rows it settled (pairs or counted rejections)."""
    frames = [pl.read_parquet(f) for f in record_files]
    records = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    from prefmix.records import empty

    records = records if records.height else empty()
    path, sha = _content_addressed(records, store.pool_dir / "synthetic", run_id)
    return PoolFile(path=str(path), sha256=sha, source="synthetic", rows=records.height, day=day,
                    deliveries=sorted({s for s, _, _ in settled}), run_id=run_id, fingerprint=fingerprint, teachers=sorted(set(teachers)),
                    coverage=[PromptRange(sha256=s, start=a, stop=b) for s, a, b in settled])


def agent_files(store: Store, rows: pl.DataFrame, deliveries: list[str], teachers: list[str], day: str) -> list[PoolFile]:
    """Tonight's agent rows (trajectory and step pairs), one file per source (pairs a human verifier decided are
    human rows); `deliveries`: the sha256 of the night's files of runs, `teachers`: who ran tonight's rollouts."""
    files: list[PoolFile] = []
    for source in ("human", "synthetic"):
        part = rows.filter(pl.col("source") == source)
        if part.height == 0:
            continue
        path, sha = _content_addressed(part, store.pool_dir / "agent", f"{source}-{short_hash(sorted(deliveries))}")
        files.append(PoolFile(path=str(path), sha256=sha, source=source, rows=part.height, day=day, kind="agent",
                              deliveries=sorted(set(deliveries)), teachers=sorted(set(teachers))))
    return files


# retraction filters ----------------------------------------------------------------------------------------
def selects(rule: Retraction) -> pl.Expr:
    """The rows of a pool file a retraction takes out."""
    gen, ann = pl.col("generation"), pl.col("annotation")
    if rule.kind == "delivery":
        return pl.col("origin_sha256") == rule.value
    if rule.kind == "vendor":
        return ann.struct.field("vendor") == rule.value
    if rule.kind == "annotator":
        return ann.struct.field("annotator_ids").list.contains(rule.value)
    return ((gen.struct.field("teacher") == rule.value) | (gen.struct.field("judge") == rule.value)
            | gen.struct.field("teacher_models").list.contains(rule.value))


def touches(rule: Retraction, file: PoolFile) -> bool:
    """Whether a retraction can take rows out of a file (without reading it)."""
    if rule.kind == "delivery":
        return rule.value in file.deliveries
    if rule.kind == "vendor":
        return file.source == "human" and file.vendor == rule.value
    if rule.kind == "annotator":
        return file.source == "human"
    return file.source == "synthetic" and rule.value in file.teachers


def takes_all(rule: Retraction, file: PoolFile) -> bool:
    """A retraction that takes every row of a file (so the file is left out without reading it)."""
    if rule.kind == "delivery":
        return file.deliveries == [rule.value]
    return rule.kind == "vendor" and file.source == "human" and file.vendor == rule.value


@dataclass
class Filtered:
    path: str
    sha256: str
    rows: int
    excluded: pl.DataFrame  # KEY + reason ("retraction:<id>"), one row per row left out


def filtered(store: Store, file: PoolFile, rules: list[Retraction]) -> Filtered:
    """The file less the rows `rules` select (each row counted under the first rule that selects it)."""
    stem = f"{file.sha256[:16]}-{short_hash(sorted(r.retraction_id for r in rules))}"
    folder = store.pool_dir / "filtered"
    side = folder / f"{stem}.json"
    keys_file = folder / f"{stem}.excluded.parquet"
    if side.is_file() and keys_file.is_file():
        info = json.loads(side.read_text(encoding="utf-8"))
        return Filtered(info["path"], info["sha256"], info["rows"], pl.read_parquet(keys_file))
    frame = pl.read_parquet(file.path)
    reason = pl.lit(None, pl.String)
    for rule in reversed(rules):  # the first rule wins
        reason = pl.when(selects(rule).fill_null(False)).then(pl.lit(f"retraction:{rule.retraction_id}")).otherwise(reason)
    marked = frame.with_columns(reason.alias("_reason"))
    excluded = marked.filter(pl.col("_reason").is_not_null()).select(*KEY, pl.col("_reason").alias("reason"))
    if excluded.is_empty():
        path, sha, rows = file.path, file.sha256, file.rows
    else:
        kept = marked.filter(pl.col("_reason").is_null()).drop("_reason")
        written, sha = _content_addressed(kept, folder, stem)
        path, rows = str(written), kept.height
    write_parquet(excluded.to_arrow(), keys_file)
    atomic_write_json(side, {"path": path, "sha256": sha, "rows": rows, "source_sha256": file.sha256,
                             "retractions": sorted(r.retraction_id for r in rules)})
    return Filtered(path, sha, rows, excluded)
