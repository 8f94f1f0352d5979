"""The canonical-record factory: every fake preference row in the tests is built here, through
`prefmix.records` (the columns, types and record ids of the real schema), so fakes cannot drift from it.

- `canonical(rows)`: dicts naming any subset of the canonical columns (struct fields may be partial) -> a
  frame with exactly the canonical columns and types, and record ids computed from the pairs.
- `records(n, source, domain, tag)`: n rows of one domain (the blending tests' inputs).
- `make_records(path, source, per_domain, tag)`: a record file with rows in every default domain, human rows
  with an annotation, synthetic rows with a generation (the lineage tests' inputs).
- `write_records(path, *frames)`: a canonical Parquet file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import polars as pl

from prefmix.records import POLARS_SCHEMA, conform, to_arrow, with_record_id
from prefmix.store import write_parquet

DOMAINS = ["general", "finance", "medicine", "law"]


def canonical(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """The rows as a canonical frame; a column a row does not name is null, record_id is always computed."""
    full = [{name: row.get(name) for name in POLARS_SCHEMA} for row in rows]
    return with_record_id(conform(pl.DataFrame(full, schema=POLARS_SCHEMA)))


def write_records(path: Path, *frames: pl.DataFrame) -> Path:
    """Write frames (concatenated, columns matched by name) as one canonical Parquet file at path."""
    frame = pl.concat(list(frames), how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return write_parquet(to_arrow(frame), path)


def origin(tag: str) -> dict[str, str]:
    """The origin columns of rows that came from the vendor file named by tag."""
    return {"origin_uri": f"file:///vendor/{tag}.parquet", "origin_sha256": hashlib.sha256(tag.encode()).hexdigest()}


def records(n: int, source: str, domain: str, tag: str, teacher: str | None = None,
            prompts: list[str] | None = None) -> pl.DataFrame:
    """n records of one domain, scored 8/2; prompts default to unique texts built from tag; a teacher gives the
    rows a generation (teacher, judge, strategy)."""
    prompts = prompts if prompts is not None else [f"{tag} prompt {i}: explain {domain} topic {i}" for i in range(n)]
    generation = {"teacher": teacher, "judge": "judge", "strategy": "pointwise"} if teacher is not None else None
    return canonical(
        {
            "prompt": prompts[i],
            "chosen": f"good answer {i} for {tag}",
            "rejected": f"bad answer {i} for {tag}",
            "domain": domain,
            "source": source,
            "chosen_score": 8.0,
            "rejected_score": 2.0,
            **origin(tag),
            "origin_row": i,
            "generation": generation,
        }
        for i in range(n)
    )


def make_records(path: Path, source: str, per_domain: int, tag: str, run_id: str | None = None) -> Path:
    """A canonical record file: per_domain rows in each domain, origin = this file's logical source."""
    synthetic = source == "synthetic"
    generation = {"teacher": "tiny", "judge": "tiny", "strategy": "pointwise", "run_id": run_id,
                  "sampling": json.dumps({"temperature": 1.0})}
    annotation = {"vendor": tag, "annotator_ids": ["a1", "a2"], "annotator_count": 2, "agreement": 1.0,
                  "review_passes": 1, "adjudicated": False}
    rows = [
        {
            "prompt": f"{tag} {domain} question {i}?",
            "chosen": f"good answer {i} for {domain} from {tag}",
            "rejected": f"poor answer {i}",
            "domain": domain,
            "source": source,
            "chosen_score": 8.0 if synthetic else None,
            "rejected_score": 2.0 if synthetic else None,
            **origin(tag),
            "generation": generation if synthetic else None,
            "annotation": annotation if source == "human" else None,
        }
        for domain in DOMAINS
        for i in range(per_domain)
    ]
    for row_number, row in enumerate(rows):
        row["origin_row"] = row_number
    return write_records(path, canonical(rows))
