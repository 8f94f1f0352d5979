"""The async core: stream the prompts of many chunks through one set of clients, write each chunk when done.

Prompts of all pending chunks feed one pool of workers, so the servers stay
saturated across chunk boundaries; a chunk is written the moment its last
prompt settles. An error-budget stop cancels the rest; finished chunks stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from prefmix.errors import ConfigError

from prefmix.generators.client import ChatClient, ErrorWindow, resolve_api_key
from prefmix.generators.durable import REJECTION_SCHEMA, RequestCache, RunDir
from prefmix.generators.plan import ChunkSpec, Plan
from prefmix.generators.strategies import STRATEGIES, Context, Outcome
from prefmix.records import POLARS_SCHEMA, empty

Progress = Callable[[dict[str, Any]], None]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def endpoints_for(plan: Plan, teachers: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Endpoint URLs per used teacher: the override wins over the config."""
    out: dict[str, list[str]] = {}
    for t in plan.used_teachers():
        urls = (teachers or {}).get(t.name) or t.endpoints
        if not urls:
            raise ConfigError(
                f"teachers.{t.name}: no endpoints; set 'endpoints', or launch a server (prefmix teacher serve) and pass it"
            )
        out[t.name] = list(urls)
    return out


def server_version(base_url: str) -> str:
    """vLLM's /version (the root of an OpenAI base URL), 'unknown' if it does not say."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with _OPENER.open(f"{root}/version", timeout=5) as resp:
            return str(json.loads(resp.read())["version"])
    except Exception:  # any failure only loses a lineage detail
        return "unknown"


def chunk_frames(outcomes: list[Outcome]) -> tuple[pl.DataFrame, pl.DataFrame]:
    records = [o.record for o in outcomes if o.record is not None]
    rejections = [o.rejection for o in outcomes if o.rejection is not None]
    rec = pl.DataFrame(records, schema={k: v for k, v in POLARS_SCHEMA.items() if k in records[0]}) if records else empty()
    rej = pl.DataFrame(rejections, schema=REJECTION_SCHEMA)
    return rec, rej


def chunk_stats(chunk: ChunkSpec, outcomes: list[Outcome]) -> dict[str, Any]:
    tallies = [o.tally for o in outcomes]
    return {
        "index": chunk.index,
        "key": chunk.key,
        "prompts": len(outcomes),
        "records": sum(o.record is not None for o in outcomes),
        "rejections": dict(Counter(o.rejection["reason"] for o in outcomes if o.rejection is not None)),
        "requests_sent": sum(t.requests_sent for t in tallies),
        "requests_cached": sum(t.requests_cached for t in tallies),
        "prompt_tokens": sum(t.prompt_tokens for t in tallies),
        "completion_tokens": sum(t.completion_tokens for t in tallies),
        "judge_parse_errors": sum(t.judge_parse_errors for t in tallies),
        "expected_tie_breaks": sum(o.record is not None and o.by_expected for o in outcomes),
    }


@dataclass
class _Live:
    """Counters for the progress callback."""

    prompts_total: int
    started: float = field(default_factory=time.monotonic)
    prompts_done: int = 0
    records: int = 0
    rejections: Counter = field(default_factory=Counter)
    requests_sent: int = 0
    requests_cached: int = 0
    completion_tokens: int = 0
    chunks_done: int = 0
    last_emit: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.prompts_done += 1
        self.requests_cached += outcome.tally.requests_cached
        if outcome.record is not None:
            self.records += 1
        else:
            self.rejections[outcome.rejection["reason"]] += 1  # type: ignore[index]

    def snapshot(self, clients: dict[str, ChatClient]) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        tokens = sum(c.stats.completion_tokens for c in clients.values())
        return {
            "prompts_total": self.prompts_total, "prompts_done": self.prompts_done, "records": self.records,
            "rejections": dict(self.rejections), "rejected": sum(self.rejections.values()),
            "requests_sent": self.requests_sent, "requests_cached": self.requests_cached,
            "completion_tokens": tokens, "in_flight": sum(c.in_flight for c in clients.values()),
            "retries": sum(c.stats.retries for c in clients.values()),
            "chunks_done": self.chunks_done, "elapsed_s": elapsed,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        }


async def run_chunks(
    plan: Plan,
    run_dir: RunDir,
    chunks: list[ChunkSpec],
    endpoints: dict[str, list[str]],
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate every given chunk (skipping none: callers pass only pending ones); returns session counters."""
    gen = plan.config.generation
    errors = ErrorWindow(gen.error_budget)
    live = _Live(prompts_total=sum(c.size for c in chunks))
    vllm_version = await asyncio.to_thread(server_version, endpoints[plan.judge.name][0])
    async with contextlib.AsyncExitStack() as stack:
        cache = RequestCache(run_dir.cache_path)
        stack.callback(cache.close)
        clients = {
            t.name: await stack.enter_async_context(
                ChatClient(t, endpoints[t.name], gen.retry, errors, resolve_api_key(t))
            )
            for t in plan.used_teachers()
        }

        def counted() -> None:
            live.requests_sent += 1

        ctx = Context(plan.config, plan.run_id, plan.templates, plan.constitution, clients, cache, vllm_version,
                      on_request=counted, extra={"teachers": [t.name for t in plan.teachers],
                                                 "fingerprint": plan.generation_fingerprint})
        strategy = STRATEGIES[gen.strategy]
        # Enough prompts in progress that every in-flight slot has work, whatever stage the prompts are in.
        active = asyncio.Semaphore(2 * sum(c.limit for c in clients.values()))

        def emit(force: bool = False) -> None:
            now = time.monotonic()
            if on_progress is not None and (force or now - live.last_emit > 0.2):
                live.last_emit = now
                on_progress(live.snapshot(clients))

        async def finish_chunk(chunk: ChunkSpec, outcomes: list[Outcome]) -> None:
            records, rejections = chunk_frames(outcomes)
            await asyncio.to_thread(run_dir.write_chunk, chunk.index, records, rejections, chunk_stats(chunk, outcomes))
            live.chunks_done += 1
            emit(force=True)

        async def one(chunk: ChunkSpec, row: dict[str, Any], slot: int, outcomes: list[Outcome | None], left: list[int]) -> None:
            try:
                outcome = await strategy(ctx, row)
            finally:
                active.release()
            outcomes[slot] = outcome
            live.add(outcome)
            emit()
            left[0] -= 1
            if left[0] == 0:
                await finish_chunk(chunk, outcomes)  # type: ignore[arg-type]

        try:
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    rows = plan.chunk_rows(chunk)
                    outcomes: list[Outcome | None] = [None] * len(rows)
                    left = [len(rows)]
                    if not rows:
                        group.create_task(finish_chunk(chunk, []))
                    for slot, row in enumerate(rows):
                        await active.acquire()
                        errors.check()
                        group.create_task(one(chunk, row, slot, outcomes, left))
        except BaseExceptionGroup as group:  # the first failure (an error-budget stop, or a bug) as itself
            raise group.exceptions[0] from None
        emit(force=True)
        return live.snapshot(clients)
