"""What a queue is drawn from: candidate synthetic pairs and the gold pool.

Candidates: canonical record files (default: the store's synthetic pool, store/pool/synthetic/*.parquet; else
the landing zones of routing.candidates), synthetic rows only, one row per record id, less the record ids an
earlier queue already sent.

Gold: items whose answer is known — gold rows of judgments shards in human.shards (is_gold with a gold answer
a or b) and the rows of routing.gold files (prompt, response_a, response_b, domain, gold_answer) — one per
normalized (prompt, response_a, response_b); `gold_id` is its record id.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from prefmix.config import Config, HumanShard, LandingZone
from prefmix.errors import InputError
from prefmix.intake import expand
from prefmix.records import conform, record_id

GOLD_COLUMNS = ("prompt", "response_a", "response_b", "domain", "gold_answer")
GOLD_SCHEMA = {"gold_id": pl.String, "prompt": pl.String, "response_a": pl.String, "response_b": pl.String,
               "domain": pl.String, "gold_answer": pl.String, "gold_source": pl.String}


def candidate_files(config: Config, pool: Path) -> list[str]:
    if config.routing.candidates:
        return [f.path for _, f in expand(config.routing.candidates)]
    folder = pool / "synthetic"
    return [str(p) for p in sorted(folder.glob("*.parquet")) if not p.name.startswith(".")] if folder.is_dir() else []


def read_candidates(files: list[str], domains: list[str]) -> pl.DataFrame:
    """Synthetic canonical rows of these files, one per record id (the first file and row that has it)."""
    frames = []
    for path in files:
        try:
            frame = pl.from_arrow(pq.read_table(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:160]})") from None
        assert isinstance(frame, pl.DataFrame)
        missing = [c for c in ("record_id", "prompt", "chosen", "rejected", "domain", "source") if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: column {missing[0]!r} missing; candidates are canonical preference records")
        frames.append(conform(frame))
    if not frames:
        return conform(pl.DataFrame())
    frame = pl.concat(frames).filter(pl.col("source") == "synthetic").unique("record_id", keep="first", maintain_order=True)
    unknown = frame.filter(~pl.col("domain").is_in(domains))
    if unknown.height:
        raise InputError(f"candidates: record {unknown.get_column('record_id')[0]}: domain {unknown.get_column('domain')[0]!r} "
                         f"is not in domains {domains}")
    return frame


def _gold_from_frame(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    frame = frame.filter(pl.col("gold_answer").is_in(["a", "b"])).select(*GOLD_COLUMNS)
    ids = [record_id(p, a, b) for p, a, b in zip(frame["prompt"], frame["response_a"], frame["response_b"])]
    return frame.with_columns(gold_id=pl.Series(ids, dtype=pl.String), gold_source=pl.lit(source)).select(list(GOLD_SCHEMA))


def gold_from_shards(shards: list[HumanShard], domains: list[str]) -> pl.DataFrame:
    """Gold items of the judgments shards (validated by the annotations reader)."""
    from prefmix.annotations.readers import read_shard

    parts = []
    for zone, found in expand([s for s in shards if s.layout == "judgments"]):
        shard = read_shard(zone.model_copy(update={"path": found.path, "glob": None}), domains)
        rows = shard.frame.filter(pl.col("is_gold"))
        if rows.height:
            parts.append(_gold_from_frame(rows, found.path))
    return pl.concat(parts) if parts else pl.DataFrame(schema=GOLD_SCHEMA)


def gold_from_files(zones: list[LandingZone], domains: list[str]) -> pl.DataFrame:
    parts = []
    for _, found in expand(zones):
        try:
            frame = pl.read_parquet(found.path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{found.path}: not a readable Parquet file ({' '.join(str(exc).split())[:160]})") from None
        missing = [c for c in GOLD_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"{found.path}: gold file: column {missing[0]!r} missing (needs {', '.join(GOLD_COLUMNS)})")
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in GOLD_COLUMNS)
        bad = frame.with_row_index("_row").filter(~pl.col("gold_answer").is_in(["a", "b"]) | ~pl.col("domain").is_in(domains))
        if bad.height:
            row = bad.row(0, named=True)
            what = (f"gold_answer {row['gold_answer']!r}: expected a or b" if row["gold_answer"] not in ("a", "b")
                    else f"domain {row['domain']!r} is not in domains {domains}")
            raise InputError(f"{found.path}: row {row['_row']}: {what}")
        parts.append(_gold_from_frame(frame, found.path))
    return pl.concat(parts) if parts else pl.DataFrame(schema=GOLD_SCHEMA)


def gold_pool(config: Config) -> pl.DataFrame:
    """Every gold item the config knows, one per gold id, in a stable order."""
    frame = pl.concat([gold_from_files(config.routing.gold, config.domains),
                       gold_from_shards(config.human.shards, config.domains)])
    return frame.unique("gold_id", keep="first", maintain_order=True).sort("gold_id")
