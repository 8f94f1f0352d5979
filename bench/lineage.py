"""Lineage benchmark: 365 nights that grow one dataset, 10,000 new rows a night, each version holding everything to date.

Each night is indexed into the ledger with the real `Ledger.index_batch` (a version's manifest, built once by the
real blend + build_manifest and renumbered per night, and its changes: the night's new rows, 70 % human from one
vendor delivery, 30 % synthetic from one generation run over one prompt delivery). The landing zone really holds a
prompt file and a vendor shard per night, so nightly planning (lineage.night.take_in: find, hash and classify the
landing-zone files, validate and aggregate the new ones, read the base version, work out the pending prompts; then
lineage.versions.plan_version) is timed for real at night 1 and at the last night.

Prints: the ledger's size on disk and rows per table; trace, impact (by delivery, vendor, teacher, annotator) and
diff (consecutive versions, and a week apart) latencies after the last night; planning time at night 1 and the last
night. The last line is JSON. Exit 1 if trace, impact or the consecutive diff takes 1 s or more.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefmix.config import Config, parse  # noqa: E402
from prefmix.contract import DatasetVersion, Delivery, Manifest, ManifestInput, PoolFile, PromptRange  # noqa: E402
from prefmix.hashing import sha256_file, sha256_text  # noqa: E402
from prefmix.lineage.ledger import CHANGE_SCHEMA, Ledger  # noqa: E402
from prefmix.store import Store, atomic_write_json  # noqa: E402

DATASET = "bench"
DOMAINS = ["general", "finance", "medicine", "law"]
VENDORS = 5
TEACHERS = ["llama-70b", "qwen-32b"]


def config_for(root: Path) -> Config:
    return parse({
        "name": DATASET, "store": str(root / "store"), "seed": 7, "dataset": DATASET,
        "prompts": [{"glob": str(root / "landing" / "prompts" / "*.parquet")}],
        "human": {"shards": [{"glob": str(root / "landing" / "acme" / "*.parquet"), "layout": "pairs",
                              "vendor": "acme-labels", "columns": {"item_id": "pair_id"}}], "calibration_sample": 0},
        "teachers": [{"name": t, "model": t, "endpoints": ["http://127.0.0.1:9/v1"]} for t in TEACHERS],
    })


def landing(root: Path, night: int, prompts: int) -> tuple[Path, Path]:
    """The night's prompt file and vendor shard in the landing zone (small: planning reads only new ones)."""
    from prefmix.annotations.samples import write_sample_shards
    from prefmix.samples import write_prompts

    prompt = root / "landing" / "prompts" / f"{night:04d}.parquet"
    write_prompts(prompt, prompts, seed=night)
    made = write_sample_shards(root / "made", seed=night, n_items=40)
    shard = root / "landing" / "acme" / f"{night:04d}.parquet"
    shard.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(made[0].path, shard)
    return Path(prompt), shard


def template(root: Path, config: Config) -> Manifest:
    """One real manifest (real blend of two small record files) to renumber for every night."""
    from prefmix.blending.blend import blend
    from prefmix.lineage.manifest import build_manifest
    from prefmix.records import conform, to_arrow, with_record_id
    from prefmix.store import write_parquet

    def rows(source: str, n: int) -> Path:
        frame = pl.DataFrame([{
            "prompt": f"{source} prompt {i}", "chosen": f"good {i}", "rejected": f"bad {i}", "domain": DOMAINS[i % 4],
            "source": source, "origin_uri": f"/x/{source}.parquet", "origin_sha256": sha256_text(source), "origin_row": i,
        } for i in range(n)])
        path = root / "template" / f"{source}.parquet"
        return write_parquet(to_arrow(with_record_id(conform(frame))), path)

    out = root / "template" / "batch"
    result = blend(config, [rows("human", 70)], [rows("synthetic", 40)], out, "template")
    return build_manifest(batch_id="template", config=config, batch_dir=out, inputs=[], synthetic_runs=[],
                          blend=result.summary, annotation_stats=None, judge_human=None, gate=None, flow_run_id=None)


def night_changes(night: int, rows: int, human_sha: str, prompt_sha: str, run_id: str) -> pl.DataFrame:
    """The night's new rows as a version's changes (all added: each version holds everything to date)."""
    n_human = rows * 7 // 10
    i = pl.int_range(rows, dtype=pl.Int64, eager=True)
    human = i < n_human
    frame = pl.DataFrame({"i": i}).with_columns(
        pl.lit("added").alias("change"),
        pl.format("n{}-r{}", pl.lit(night), pl.col("i")).map_batches(
            lambda s: pl.Series([sha256_text(x) for x in s.to_list()]), return_dtype=pl.String).alias("record_id"),
        pl.when(human).then(pl.lit(f"/landing/acme/{night:04d}.parquet")).otherwise(pl.lit(f"/landing/prompts/{night:04d}.parquet")).alias("origin_uri"),
        pl.when(human).then(pl.lit(human_sha)).otherwise(pl.lit(prompt_sha)).alias("origin_sha256"),
        pl.when(human).then(pl.col("i")).otherwise(pl.col("i") - n_human).alias("origin_row"),
        pl.when(human).then(pl.lit("human")).otherwise(pl.lit("synthetic")).alias("source"),
        pl.lit(DOMAINS[0]).alias("domain"),
        pl.lit("new_delivery").alias("reason"),
        pl.when(human).then(None).otherwise(pl.lit(run_id)).alias("run_id"),
        pl.when(human).then(None).otherwise(pl.lit("f" * 64)).alias("fingerprint"),
        pl.when(human).then(None).otherwise(pl.lit(TEACHERS[night % 2])).alias("teacher"),
        pl.when(human).then(None).otherwise(pl.lit(TEACHERS[0])).alias("judge"),
        pl.when(human).then(pl.lit(f"vendor-{night % VENDORS}")).otherwise(None).alias("vendor"),
        pl.when(human).then(None).otherwise(pl.concat_list([pl.lit(TEACHERS[night % 2]), pl.lit(TEACHERS[0])])).alias("models"),
        pl.when(human).then(pl.concat_list([pl.format("w{}", pl.col("i") % 50), pl.format("w{}", (pl.col("i") + 7) % 50)])).otherwise(None)
        .alias("annotator_ids"),
        pl.lit(0, pl.Int64).alias("file_no"), pl.col("i").alias("file_row"),
    )
    return frame.select(list(CHANGE_SCHEMA)).cast(dict(CHANGE_SCHEMA))


def version_manifest(base: Manifest, store: Store, night: int, rows: int, info: DatasetVersion, inputs: list[ManifestInput]) -> Manifest:
    from prefmix.lineage.manifest import now, with_status

    batch_id = f"b{night:04d}"
    manifest = base.model_copy(update={"batch_id": batch_id, "created_at": now(), "rows": rows, "dataset": info, "inputs": inputs})
    return with_status(manifest, "published")


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - started, out


def plan_night(config: Config, store: Store, day: str, night: int, rows: int) -> tuple[float, dict[str, int]]:
    """take_in + plan_version for a night whose landing zone holds this night's new files (nothing written)."""
    from prefmix.lineage.night import next_version, take_in

    started = time.perf_counter()
    intake = take_in(config, store, ledger_url=None)
    new = [PoolFile(path=f"/pool/human/{night}.parquet", sha256="h" * 64, source="human", rows=rows * 7 // 10, day=day,
                    deliveries=[d.sha256 for d in intake.deliveries if d.is_new and d.kind == "human_shard"][:1]),
           PoolFile(path=f"/pool/synthetic/{night}.parquet", sha256="s" * 64, source="synthetic", rows=rows * 3 // 10, day=day,
                    deliveries=[], run_id=f"nightly-{night}", fingerprint=intake.fingerprint)]
    plan = next_version(config, store, intake, day, new, None)
    seconds = time.perf_counter() - started
    return seconds, {"new_deliveries": sum(d.is_new for d in intake.deliveries), "known": sum(d.status == "known" for d in intake.deliveries),
                     "pending_prompts": intake.pending.height, "pool_files": len(plan.pool), "version": plan.version}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--rows", type=int, default=10_000, help="new rows a night")
    parser.add_argument("--prompts", type=int, default=300, help="prompts in each night's prompt file")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    import datetime as dt

    from prefmix.generators.plan import generation_fingerprint, load_generation_assets

    root = args.root or Path(tempfile.mkdtemp(prefix="prefmix-bench-lineage-"))
    config = config_for(root)
    store = Store(root / "store")
    store.ensure()
    fingerprint = generation_fingerprint(config, *load_generation_assets(config))
    base = template(root, config)
    ledger = Ledger.for_store(store)
    ledger.create()
    start_day = dt.date(2026, 1, 1)
    pool: list[PoolFile] = []
    prompt_pool: list[Delivery] = []
    planning: dict[str, object] = {}
    index_s: list[float] = []
    started = time.monotonic()
    for night in range(1, args.nights + 1):
        day = (start_day + dt.timedelta(days=night - 1)).isoformat()
        prompt_file, shard = landing(root, night, args.prompts)
        if night in (1, args.nights):
            seconds, facts = plan_night(config, store, day, night, args.rows)
            planning[f"night_{night}"] = {"seconds": round(seconds, 3), **facts}
            print(f"planning night {night}: {seconds:.3f} s {facts}", flush=True)
        prompt_sha, human_sha = sha256_file(prompt_file), sha256_file(shard)
        stat_p, stat_h = prompt_file.stat(), shard.stat()
        new_prompt = Delivery(kind="prompts", path=str(prompt_file), sha256=prompt_sha, bytes=stat_p.st_size, status="new",
                              rows=args.prompts, mtime_ns=stat_p.st_mtime_ns)
        new_shard = Delivery(kind="human_shard", path=str(shard), sha256=human_sha, bytes=stat_h.st_size, status="new",
                             rows=40, vendor="acme-labels", layout="pairs", mtime_ns=stat_h.st_mtime_ns)
        run_id = f"nightly-{day}"
        pool += [PoolFile(path=f"/pool/human/{night}.parquet", sha256=sha256_text(f"h{night}"), source="human", rows=args.rows * 7 // 10,
                          day=day, deliveries=[human_sha], vendor=f"vendor-{night % VENDORS}"),
                 PoolFile(path=f"/pool/synthetic/{night}.parquet", sha256=sha256_text(f"s{night}"), source="synthetic",
                          rows=args.rows * 3 // 10, day=day, deliveries=[prompt_sha], run_id=run_id, fingerprint=fingerprint,
                          teachers=list(TEACHERS), coverage=[PromptRange(sha256=prompt_sha, start=0, stop=args.prompts)])]
        prompt_pool.append(new_prompt)
        info = DatasetVersion(name=DATASET, version=night, base_version=night - 1 or None, day=day, fingerprint=fingerprint,
                              deliveries=[new_prompt, new_shard], pool=list(pool), prompts=list(prompt_pool))
        inputs = [ManifestInput(role="human_records" if f.source == "human" else "synthetic_records", path=f.path, sha256=f.sha256,
                                rows=f.rows, run_id=f.run_id) for f in pool]
        manifest = version_manifest(base, store, night, args.rows * night, info, inputs)
        batch_dir = store.batch_dir(manifest.batch_id)
        batch_dir.mkdir(parents=True, exist_ok=True)
        if night >= args.nights - 1:  # the base of the last night's planning is a real version folder
            atomic_write_json(batch_dir / "manifest.json", manifest.model_dump(mode="json"))
        store.link_version(DATASET, night, batch_dir)
        store.set_dataset_latest(DATASET, night)
        seconds, _ = timed(ledger.index_batch, manifest, batch_dir, night_changes(night, args.rows, human_sha, prompt_sha, run_id))
        index_s.append(seconds)
        if night % 25 == 0 or night == args.nights:
            print(f"night {night}: indexed in {seconds:.2f} s ({time.monotonic() - started:.0f} s so far)", flush=True)

    with ledger.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger_bytes = store.ledger_path.stat().st_size
    sizes = ledger.size()

    rng = random.Random(1)
    last = args.nights
    traces = []
    for _ in range(args.queries):
        night, row = rng.randint(1, last), rng.randrange(args.rows)
        seconds, hits = timed(ledger.trace, sha256_text(f"n{night}-r{row}"))
        assert len(hits) == last - night + 1, (night, len(hits))
        traces.append(seconds)
    some = rng.randint(1, last)
    shard_sha = sha256_file(root / "landing" / "acme" / f"{some:04d}.parquet")
    impacts = {
        "delivery": timed(ledger.impact_selector, "delivery", shard_sha, DATASET),
        "vendor": timed(ledger.impact_selector, "vendor", "vendor-3", DATASET),
        "teacher": timed(ledger.impact_selector, "teacher", TEACHERS[1], DATASET),
        "annotator": timed(ledger.impact_selector, "annotator", "w7", DATASET),
    }
    assert [v["version"] for v in impacts["delivery"][1]] == list(range(some, last + 1))
    diff_s, diff = timed(ledger.diff_versions, DATASET, last - 1, last)
    assert len(diff["added"]) == args.rows and not diff["removed"]
    week_s, week = timed(ledger.diff_versions, DATASET, max(1, last - 7), last)

    result = {
        "nights": args.nights, "rows_per_night": args.rows, "rows_in_last_version": args.rows * args.nights,
        "ledger_mib": round(ledger_bytes / 2**20, 1), "ledger_bytes_per_row": round(ledger_bytes / (args.rows * args.nights), 1),
        "ledger_rows": sizes,
        "trace_s": round(max(traces), 4), "trace_median_s": round(statistics.median(traces), 4),
        "impact_s": round(max(s for s, _ in impacts.values()), 4),
        "impact_by_selector_s": {k: round(s, 4) for k, (s, _) in impacts.items()},
        "diff_s": round(diff_s, 4), "diff_rows": len(diff["added"]) + len(diff["removed"]),
        "diff_week_s": round(week_s, 4), "diff_week_rows": len(week["added"]) + len(week["removed"]),
        "index_first_s": round(index_s[0], 3), "index_last_s": round(index_s[-1], 3),
        "planning_night_1_s": planning.get("night_1", {}).get("seconds"),  # type: ignore[union-attr]
        f"planning_night_{last}_s": planning.get(f"night_{last}", {}).get("seconds"),  # type: ignore[union-attr]
        "planning": planning,
    }
    print(f"ledger: {result['ledger_mib']} MiB for {result['rows_in_last_version']} rows in the last version "
          f"({result['ledger_bytes_per_row']} B/row); rows per table {sizes}")
    print(f"trace: max {result['trace_s'] * 1e3:.1f} ms; impact: {result['impact_by_selector_s']}; diff v{last - 1} v{last}: "
          f"{diff_s * 1e3:.1f} ms ({result['diff_rows']} rows); a week: {week_s * 1e3:.1f} ms ({result['diff_week_rows']} rows)")
    print(f"planning: night 1 {result['planning_night_1_s']} s, night {last} {result[f'planning_night_{last}_s']} s; "
          f"indexing a night: first {result['index_first_s']} s, last {result['index_last_s']} s")
    print(json.dumps(result))
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if max(result["trace_s"], result["impact_s"], result["diff_s"]) < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
