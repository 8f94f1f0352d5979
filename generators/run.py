"""Public API of the generators room: generate a run, or drive it chunk by chunk (Prefect tasks, Ray)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from prefmix.config import Config
from prefmix.contract import GenerationRun, GenerationSummary
from prefmix.errors import InputError, RunAborted, UserError
from prefmix.store import Store, atomic_write_json

from prefmix.generators.durable import RunDir
from prefmix.generators.engine import endpoints_for, run_chunks
from prefmix.generators.judge import judge_pairs
from prefmix.generators.plan import ChunkSpec, Plan, build_plan

__all__ = [
    "ChunkResult", "ChunkSpec", "GenerationRun", "GenerationSummary", "finalize_run", "generate", "judge_pairs",
    "plan_chunks", "run_chunk",
]


class ChunkResult(BaseModel):
    run_id: str
    index: int
    records_file: str
    rejections_file: str
    records: int
    rejections: dict[str, int]
    skipped: bool = Field(False, description="the chunk was already written; nothing was sent")


def _open(plan: Plan, store: Store, endpoints: dict[str, list[str]] | None = None) -> RunDir:
    run_dir = RunDir(store, plan.run_id)
    run_dir.open(
        plan.fingerprint,
        {
            "created": datetime.now(timezone.utc).isoformat(),
            "fingerprint_inputs": plan.fingerprint_inputs,
            "prompts_in": plan.prompts.height,
            "chunk_size": plan.config.generation.chunk_size,
            "chunks": [c.model_dump() for c in plan.chunks],
            "lineage": plan.lineage(endpoints or {}, None).model_dump(mode="json"),
        },
    )
    return run_dir


def _session(run_dir: RunDir, started: float, counters: dict[str, Any] | None, status: str) -> None:
    run_dir.write_session(
        f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        {"elapsed_s": time.monotonic() - started, "status": status, **(counters or {})},
    )


def _execute(plan: Plan, run_dir: RunDir, chunks: list[ChunkSpec], teachers: dict[str, list[str]] | None,
             on_progress: Callable[[dict], None] | None) -> None:
    pending = [c for c in chunks if not run_dir.chunk_done(c.index)]
    if not pending:
        return
    endpoints = endpoints_for(plan, teachers)
    started, counters, status = time.monotonic(), None, "aborted"
    try:
        counters = asyncio.run(run_chunks(plan, run_dir, pending, endpoints, on_progress))
        status = "finished"
    except RunAborted as exc:
        done = sum(run_dir.chunk_done(c.index) for c in plan.chunks)
        raise RunAborted(
            f"{exc}. {done} of {len(plan.chunks)} chunks are written; fix the cause and rerun with --run-id {plan.run_id} to resume"
        ) from None
    finally:
        _session(run_dir, started, counters, status)


def generate(
    config: Config,
    store: Store,
    run_id: str,
    *,
    limit: int | None = None,
    teachers: dict[str, list[str]] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    prompts: pl.DataFrame | None = None,
) -> GenerationRun:
    """Generate (or resume) run `run_id`: every prompt (of the config, or the given `prompts` rows) ends as a
    record or a counted rejection."""
    plan = build_plan(config, run_id, limit, prompts)
    run_dir = _open(plan, store, teachers)
    with run_dir.lock():
        _execute(plan, run_dir, plan.chunks, teachers, on_progress)
        return _finalize(plan, run_dir, teachers)


def plan_chunks(config: Config, store: Store, run_id: str, limit: int | None = None) -> list[ChunkSpec]:
    """The run's chunks (picklable); creates run.json or checks the fingerprint of an existing run."""
    plan = build_plan(config, run_id, limit)
    _open(plan, store)
    return plan.chunks


def run_chunk(
    config: Config, store: Store, run_id: str, chunk: ChunkSpec, teachers: dict[str, list[str]] | None = None,
    limit: int | None = None,
) -> ChunkResult:
    """Generate one chunk; returns at once if its output exists. Chunks of one run may run in parallel processes.

    `limit` must be the one given to plan_chunks (the chunk key is checked against a fresh plan).
    """
    run_dir = RunDir(store, run_id)
    if run_dir.chunk_done(chunk.index):
        return _chunk_result(run_dir, chunk.index, skipped=True)
    limit = limit if limit is not None else (run_dir.read_run() or {}).get("fingerprint_inputs", {}).get("limit")
    plan = build_plan(config, run_id, limit)
    _open(plan, store, teachers)
    planned = next((c for c in plan.chunks if c.index == chunk.index), None)
    if planned is None or planned.key != chunk.key:
        raise UserError(f"{run_dir.path}: chunk {chunk.index} no longer matches the prompts or config it was planned from")
    with run_dir.lock(f"chunk-{chunk.index:05d}"):
        _execute(plan, run_dir, [planned], teachers, None)
    return _chunk_result(run_dir, chunk.index, skipped=False)


def finished_record_files(store: Store, runs: list[str] | None = None) -> list[str]:
    """Record files of the named generation runs, or of every finished run (one with summary.json)."""
    base = store.root / "runs"
    if runs is None:
        runs = sorted(p.name for p in base.iterdir() if RunDir(store, p.name).summary_path.is_file()) if base.is_dir() else []
    files: list[str] = []
    for run_id in runs:
        run_dir = RunDir(store, run_id)
        if not run_dir.summary_path.is_file():
            raise InputError(f"run {run_id!r}: no finished generation run at {run_dir.path} (summary.json missing)")
        files += [str(run_dir.records_file(c["index"])) for c in (run_dir.read_run() or {}).get("chunks", [])]
    return files


def _chunk_result(run_dir: RunDir, index: int, skipped: bool) -> ChunkResult:
    stats = run_dir.read_stats(index)
    return ChunkResult(
        run_id=run_dir.run_id, index=index, records_file=str(run_dir.records_file(index)),
        rejections_file=str(run_dir.rejections_file(index)), records=stats["records"],
        rejections=stats["rejections"], skipped=skipped,
    )


def finalize_run(config: Config, store: Store, run_id: str, teachers: dict[str, list[str]] | None = None) -> GenerationRun:
    """Check every chunk is written, reconcile the counts, write summary.json; returns the run."""
    run_dir = RunDir(store, run_id)
    meta = run_dir.read_run()
    if meta is None:
        raise UserError(f"{run_dir.path}: no generation run {run_id!r} (run.json missing)")
    plan = build_plan(config, run_id, meta.get("fingerprint_inputs", {}).get("limit"))
    if plan.fingerprint != meta["fingerprint"]:
        raise UserError(f"{run_dir.run_file}: run {run_id!r} was started with a different generation config")
    return _finalize(plan, run_dir, teachers)


def per_pair(tokens: int, pairs: int) -> float | None:
    """Teacher tokens (prompt + completion, rejected prompts included) per accepted pair."""
    return round(tokens / pairs, 1) if pairs > 0 else None


def _finalize(plan: Plan, run_dir: RunDir, teachers: dict[str, list[str]] | None) -> GenerationRun:
    missing = [c.index for c in plan.chunks if not run_dir.chunk_done(c.index)]
    if missing:
        raise UserError(
            f"{run_dir.path}: run {plan.run_id!r} is incomplete ({len(missing)} of {len(plan.chunks)} chunks missing,"
            f" first {missing[0]}); resume it with the same --run-id"
        )
    stats = [run_dir.read_stats(c.index) for c in plan.chunks]
    record_files = [str(run_dir.records_file(c.index)) for c in plan.chunks]
    rejection_files = [str(run_dir.rejections_file(c.index)) for c in plan.chunks]
    rejections: Counter[str] = Counter()
    for s in stats:
        rejections.update(s["rejections"])
    records = sum(pq.read_metadata(f).num_rows for f in record_files)
    counts = {k: sum(s[k] for s in stats) for k in ("requests_sent", "requests_cached", "prompt_tokens", "completion_tokens", "judge_parse_errors")}
    tie_breaks = sum(s.get("expected_tie_breaks", 0) for s in stats)
    tokens = counts["prompt_tokens"] + counts["completion_tokens"]
    summary = GenerationSummary(
        prompts_in=plan.prompts.height,
        records=records,
        rejections=dict(sorted(rejections.items())),
        **counts,
        expected_tie_breaks=tie_breaks,
        tokens_per_pair=per_pair(tokens, records),
        tokens_per_pair_integer=per_pair(tokens, records - tie_breaks),
        elapsed_s=round(sum(s.get("elapsed_s", 0.0) for s in run_dir.sessions()), 3),
    )
    if not summary.reconciled:  # a bug, never a user error: refuse to hand out a run that lost prompts
        raise RuntimeError(f"{run_dir.path}: {summary.prompts_in} prompts in but {records} records + {sum(rejections.values())} rejections")
    versions = sorted({v for f in record_files for v in pl.read_parquet(f, columns=["generation"])["generation"].struct.field("vllm_version").drop_nulls().to_list()})
    lineage = plan.lineage(teachers or {}, ",".join(versions) or None)
    result = GenerationRun(
        run_id=plan.run_id, run_dir=str(run_dir.path), record_files=record_files, rejection_files=rejection_files,
        summary=summary, lineage=lineage,
    )
    atomic_write_json(run_dir.summary_path, result.model_dump(mode="json"))
    return result
