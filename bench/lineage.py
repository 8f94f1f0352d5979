"""Lineage benchmark: trace and impact on a store of 1,000 published batches (10M ledger rows).

The batches are published with the real protocol (build_manifest + publish, so
manifests, cards, LATEST and the ledger's batches/files/inputs tables are real)
from small data files; the ledger's records table is then filled in bulk to
10M rows drawn from a pool of 2M distinct records (each record sits in about
five batches, as nightly batches overlap). The store is cached under
/work/bench-data/lineage. Prints timings, then a JSON line with trace_s and impact_s
(the slowest of the timed queries, run in this process after a cold start).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefmix.lineage import audit  # noqa: E402
from prefmix.lineage.manifest import build_manifest, code_version  # noqa: E402
from prefmix.lineage.publish import publish, stage_dir  # noqa: E402
from prefmix.config import Config  # noqa: E402
from prefmix.records import POLARS_SCHEMA, conform, to_arrow, with_record_id  # noqa: E402
from prefmix.store import Store, atomic_write_json, write_parquet  # noqa: E402

CACHE = Path("/work/bench-data/lineage")
DOMAINS = ["general", "finance", "medicine", "law"]
N_SHARDS = 50
N_RUNS = 200
N_ORIGINS = 250  # shards and run chunk files the records come from
ROWS_PER_FILE = 20
LAYOUT = 3  # bump when the ledger schema changes, so the cached store is rebuilt


def shard_path(i: int) -> str:
    return f"/vendor/acme/shard-{i:03d}.parquet"


def shard_sha(i: int) -> str:
    return hashlib.sha256(f"shard-{i}".encode()).hexdigest()


def pool_ids(n: int) -> list[str]:
    return [hashlib.sha256(f"record-{i}".encode()).hexdigest() for i in range(n)]


def small_batch_file(path: Path, batch_id: str, ids: list[str]) -> None:
    rows = [
        {
            "prompt": f"prompt {rid[:8]}",
            "chosen": "chosen",
            "rejected": "rejected",
            "domain": DOMAINS[i % 4],
            "source": "human" if i % 10 < 7 else "synthetic",
            "origin_uri": f"file://{shard_path(i % N_SHARDS)}",
            "origin_sha256": shard_sha(i % N_SHARDS),
            "origin_row": i,
            "batch_id": batch_id,
            "split": "train",
        }
        for i, rid in enumerate(ids)
    ]
    frame = conform(pl.DataFrame([{k: r.get(k) for k in POLARS_SCHEMA} for r in rows], schema=POLARS_SCHEMA))
    write_parquet(to_arrow(with_record_id(frame)), path)


def build(root: Path, batches: int, total_rows: int, pool: int) -> dict:
    started = time.monotonic()
    store = Store(root / "store")
    store.ensure()
    config = Config(store=str(store.root))
    version = code_version()
    rng = random.Random(0)
    for b in range(batches):
        batch_id = f"b{b:04d}"
        staged = stage_dir(store, batch_id)
        small_batch_file(staged / "data" / "train-00000.parquet", batch_id, [f"{b}-{i}" for i in range(ROWS_PER_FILE)])
        shards = rng.sample(range(N_SHARDS), 3)
        runs = rng.sample(range(N_RUNS), 2)
        inputs = [{"role": "human_shard", "path": shard_path(s), "sha256": shard_sha(s)} for s in shards]
        manifest = build_manifest(
            batch_id=batch_id,
            config=config,
            batch_dir=staged,
            inputs=inputs,
            synthetic_runs=[{"run_id": f"run-{r:03d}", "teacher_models": ["tiny-teacher"]} for r in runs],
            blend_summary={"requested": {"human": 7000, "synthetic": 3000}, "achieved": {"human": 7000, "synthetic": 3000}},
            annotation_stats=None,
            judge_human=None,
            gate={"verdict": "pass", "checks": []},
            flow_run_id=None,
            code_version=version,
        )
        publish(store, batch_id, manifest)
        if b % 100 == 99:
            print(f"published {b + 1} batches ({time.monotonic() - started:.0f} s)", flush=True)
    published_s = time.monotonic() - started

    # Bulk records: sorted by record_id so the clustered index is appended, not scattered.
    per_batch = (total_rows - batches * ROWS_PER_FILE) // batches
    ids = pl.Series("record_id", pool_ids(pool))
    np_rng = np.random.default_rng(0)
    picks = np.concatenate([np_rng.choice(pool, per_batch, replace=False) for _ in range(batches)])
    frame = pl.DataFrame(
        {"idx": picks, "batch_pk": np.repeat(np.arange(1, batches + 1), per_batch), "file_row": np.tile(np.arange(per_batch) % ROWS_PER_FILE, batches)}
    )
    frame = frame.with_columns(record_id=ids.gather(frame["idx"]))
    with sqlite3.connect(store.ledger_path) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        base_origin = conn.execute("SELECT coalesce(max(pk), 0) FROM origins").fetchone()[0]
        conn.executemany(
            "INSERT OR IGNORE INTO origins (pk, uri, sha256) VALUES (?, ?, ?)",
            [(base_origin + 1 + o, f"file:///vendor/origin-{o:03d}.parquet", hashlib.sha256(f"origin-{o}".encode()).hexdigest()) for o in range(N_ORIGINS)],
        )
        frame = frame.select(
            "record_id",
            "batch_pk",
            (pl.col("idx") % N_ORIGINS + base_origin + 1).alias("origin_pk"),
            (pl.col("idx") // N_ORIGINS).alias("origin_row"),
            pl.when(pl.col("idx") % 10 < 7).then(pl.lit("human")).otherwise(pl.lit("synthetic")).alias("source"),
            pl.when(pl.col("idx") % 10 < 7).then(pl.lit(None, pl.String)).otherwise(pl.format("run-{}", (pl.col("idx") % N_RUNS).cast(pl.String).str.zfill(3))).alias("run_id"),
            pl.lit(0).alias("file_no"),
            "file_row",
        ).sort("record_id", "batch_pk")
        per_origin = frame.group_by("batch_pk", "origin_pk").agg(pl.len().alias("rows")).sort("batch_pk", "origin_pk")
        conn.executemany(
            "INSERT INTO batch_origins (batch_pk, origin_pk, rows) VALUES (?, ?, ?) "
            "ON CONFLICT (batch_pk, origin_pk) DO UPDATE SET rows = rows + excluded.rows",
            per_origin.rows(),
        )
        for chunk in frame.iter_slices(500_000):
            conn.executemany("INSERT INTO records (record_id, batch_pk, origin_pk, origin_row, source, run_id, file_no, file_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk.rows())
        conn.commit()
        count = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    info = {"layout": LAYOUT, "batches": batches, "rows": count, "pool": pool, "published_s": round(published_s, 1), "build_s": round(time.monotonic() - started, 1)}
    atomic_write_json(root / "built.json", info)
    return info


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CACHE)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--pool", type=int, default=2_000_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    wanted = {"batches": args.batches, "rows": args.rows, "pool": args.pool, "layout": LAYOUT}
    marker = args.root / "built.json"
    built = json.loads(marker.read_text()) if marker.exists() and not args.rebuild else None
    if not built or {k: built.get(k) for k in wanted} != wanted:
        if args.root.exists():
            import shutil

            shutil.rmtree(args.root)
        print(f"building {args.batches} batches / {args.rows} rows under {args.root} ...", flush=True)
        built = build(args.root, args.batches, args.rows, args.pool)
        print(f"built: {built}", flush=True)
    store = Store(args.root / "store")

    rng = random.Random(1)
    trace_times, hits = [], []
    for _ in range(args.queries):
        rid = hashlib.sha256(f"record-{rng.randrange(args.pool)}".encode()).hexdigest()
        seconds, result = timed(audit.trace, store, rid)
        trace_times.append(seconds)
        hits.append(len(result["batches"]))
    refs = [shard_path(rng.randrange(N_SHARDS)) for _ in range(args.queries // 2)]
    refs += [shard_sha(rng.randrange(N_SHARDS)) for _ in range(args.queries // 4)]
    refs += [f"run-{rng.randrange(N_RUNS):03d}" for _ in range(args.queries // 8)]
    refs += [f"file:///vendor/origin-{rng.randrange(N_ORIGINS):03d}.parquet" for _ in range(args.queries - len(refs))]
    impact_times, impact_hits = [], []
    for ref in refs:
        seconds, result = timed(audit.impact, store, ref)
        impact_times.append(seconds)
        impact_hits.append(len(result["batches"]))
    ledger_mb = round(os.path.getsize(store.ledger_path) / 2**20)
    print(f"trace:  median {statistics.median(trace_times) * 1e3:.1f} ms, max {max(trace_times) * 1e3:.1f} ms, batches per record {statistics.mean(hits):.1f}")
    print(f"impact: median {statistics.median(impact_times) * 1e3:.1f} ms, max {max(impact_times) * 1e3:.1f} ms, batches per input {statistics.mean(impact_hits):.1f}")
    print(f"ledger: {ledger_mb} MiB, {built['rows']} records, {built['batches']} batches")
    print(
        json.dumps(
            {
                "trace_s": round(max(trace_times), 4),
                "impact_s": round(max(impact_times), 4),
                "trace_median_s": round(statistics.median(trace_times), 4),
                "impact_median_s": round(statistics.median(impact_times), 4),
                "batches": built["batches"],
                "rows": built["rows"],
                "ledger_mib": ledger_mb,
            }
        )
    )
    return 0 if max(trace_times) < 1 and max(impact_times) < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
