"""Throughput of prefmix's generator against a plain asyncio load generator, same requests, same concurrency.

Each round runs `prefmix.generators.run.generate` (pointwise strategy: answers, then
JSON-schema judge calls) on a fresh run, records the exact request payloads it
sent, and replays them with a bare aiohttp + semaphore client at the same
concurrency against the same server. vLLM caches prompt prefixes, so a replay of
the exact requests would find its prompts already cached: every run therefore
starts its system prompts with its own nonce (prefmix through a bench template,
the replay by swapping the nonce for a fresh one of the same length), and neither
side reuses the other's cache. A warm-up pair of runs comes first.

    python bench/generation.py [--teacher tiny|small] [--prompts N] [--concurrency 128] [--rounds R]

--teacher tiny (default): the tiny random teacher, 1000 prompts of 64 tokens; the server at
  $PREFMIX_TEST_VLLM_URL if set, else one started here.
--teacher small: the demo's small real teacher (SmolLM2-135M-Instruct) served as `prefmix demo` serves it,
  with the demo's generation settings (brevity template, T=0.7, max_tokens 192, greedy judge with expected
  scores, truncated answers rejected) on the demo's sample prompts; $PREFMIX_TEST_SMALL_URL reuses a server.
  Also reports teacher tokens per accepted pair with integer scores and with expected scores, side by side.
  Rounds are small (about 124 requests; `--prompts 64` doubles them, and on a busy 2-core machine took 28 minutes),
  so a run's fixed costs and the collector's full passes move the client CPU ratio from round to round; the
  JSON gives each round's figures and the collector's share.

Client CPU is the whole process's CPU (getrusage) over each side's window. Before each window, outside it and
for both sides alike, the heap is collected once (settle_heap), so that neither side pays for a full
collection that the other side's garbage made due.
The last line printed is JSON with at least {"ratio": prefmix req/s / plain req/s}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefmix.generators.client import ChatClient  # noqa: E402
from prefmix.config import load  # noqa: E402
from prefmix.store import Store  # noqa: E402

DOMAINS = ["general", "finance", "medicine", "law"]
DEMO = REPO / "configs" / "demo.yaml"
DEFAULTS = {"tiny": {"prompts": 1000, "rounds": 3, "max_tokens": 64}, "small": {"prompts": 32, "rounds": 2, "max_tokens": 192}}


@contextlib.contextmanager
def server(teacher: str) -> Iterator[tuple[str, str]]:
    if teacher == "small":
        url = os.environ.get("PREFMIX_TEST_SMALL_URL")
        config = load(DEMO)
        if url:
            yield url, config.teachers[0].model
            return
        from prefmix.generators.launch import launched_teachers

        t0 = time.perf_counter()
        with launched_teachers(config, Path(tempfile.gettempdir()) / "bench-small") as endpoints:
            print(f"small teacher ready in {time.perf_counter() - t0:.0f} s", flush=True)
            yield endpoints[config.teachers[0].name][0], config.teachers[0].model
        return
    url = os.environ.get("PREFMIX_TEST_VLLM_URL")
    if url:
        yield url, "tiny-teacher"
        return
    from prefmix.generators.vllm_server import VLLMServer, build_tiny_teacher

    model = build_tiny_teacher(REPO / ".prefmix" / "tiny-teacher", seed=0)
    with VLLMServer(model, name="tiny-teacher", port=0, log_path=Path(tempfile.gettempdir()) / "bench-vllm.log") as srv:
        yield srv.base_url, srv.model_name


def write_inputs(work: Path, teacher: str, url: str, model: str, prompts: int, concurrency: int, max_tokens: int) -> Path:
    if teacher == "small":
        from prefmix.samples import sample_prompts

        sample_prompts(prompts, seed=11, domains=DOMAINS).write_parquet(work / "prompts.parquet")
        generation = yaml.safe_load(DEMO.read_text())["generation"]
        generation["sampling"]["max_tokens"] = max_tokens
        generation["chunk_size"] = 256
    else:
        pl.DataFrame(
            {"prompt": [f"Question {i}: explain how item {i * 37 % 1009} works, briefly." for i in range(prompts)],
             "domain": [DOMAINS[i % 4] for i in range(prompts)]}
        ).write_parquet(work / "prompts.parquet")
        generation = {
            "strategy": "pointwise", "samples_per_prompt": 2, "chunk_size": 256, "judge_max_tokens": 48,
            "sampling": {"max_tokens": max_tokens, "temperature": 1.0, "seed": 1234},
            "truncated": "keep",  # random weights never stop on their own
        }
    config = {
        "store": "store",
        "prompts": [{"path": "prompts.parquet"}],
        "teachers": [{"name": teacher, "model": model, "endpoints": [url], "max_in_flight": concurrency, "timeout_s": 600}],
        "generation": generation,
    }
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def nonce_template(work: Path, base: str, nonce: str) -> Path:
    """The `base` template set with `nonce` at the start of every system prompt."""
    data = yaml.safe_load((REPO / "generators" / "templates" / f"{base}.yaml").read_text())
    for spec in data["templates"].values():
        spec["system"] = f"[{nonce}] {spec.get('system', '')}"
    path = work / f"templates-{nonce}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def fresh_nonce() -> str:
    return secrets.token_hex(6)


def renonce(payloads: list[dict[str, Any]], old: str) -> list[dict[str, Any]]:
    new = fresh_nonce()
    return [json.loads(json.dumps(p).replace(old, new)) for p in payloads]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GCClock:
    """Time spent in the cycle collector and its full passes, to tell how much of a window's CPU was collection."""

    def __init__(self) -> None:
        self.seconds, self.full, self._start = 0.0, 0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._start
        self.full += info["generation"] == 2

    def read(self) -> tuple[float, int]:
        return self.seconds, self.full


GC = GCClock()


def settle_heap() -> None:
    """A full collection before each side's measured window (outside it), for both sides alike: the collector's
    debt, the objects promoted since its last full pass, carries over from whatever ran before, and one full
    pass over this process's heap (~110,000 objects) costs about as much CPU as a hundred requests; without it,
    which window pays for the other side's garbage decides a round."""
    gc.collect()


def run_prefmix(config_path: Path, template: str, run_id: str, nonce: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One fresh generate() run; returns its measures and the payloads it sent, in order."""
    from prefmix.generators.run import generate

    sent: list[dict[str, Any]] = []
    original = ChatClient.chat

    async def recording(self: ChatClient, payload: dict[str, Any]):  # noqa: ANN202
        sent.append({"model": self.teacher.model, **payload})
        return await original(self, payload)

    ChatClient.chat = recording  # type: ignore[method-assign]
    try:
        config = load(config_path, [f"generation.template={nonce_template(config_path.parent, template, nonce)}"])
        settle_heap()
        (g0, f0), c0, t0 = GC.read(), cpu_seconds(), time.perf_counter()
        run = generate(config, Store.at(config.store), run_id)
        elapsed, cpu, (g1, f1) = time.perf_counter() - t0, cpu_seconds() - c0, GC.read()
    finally:
        ChatClient.chat = original  # type: ignore[method-assign]
    s = run.summary
    assert s.requests_cached == 0 and s.requests_sent == len(sent), (s, len(sent))
    return {"requests": s.requests_sent, "completion_tokens": s.completion_tokens, "elapsed_s": elapsed,
            "client_cpu_s": cpu, "records": s.records, "rejections": s.rejections,
            "teacher_tokens": s.prompt_tokens + s.completion_tokens, "expected_tie_breaks": s.expected_tie_breaks,
            "gc_s": g1 - g0, "full_collections": f1 - f0}, sent


async def _plain(url: str, payloads: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=600)) as session:
        errors: list[str] = []

        async def one(payload: dict[str, Any]) -> int:
            async with slots:
                async with session.post(f"{url}/chat/completions", json=payload) as resp:
                    data = await resp.json(content_type=None)
            if "usage" not in data:  # an error body: counted, not retried (this is the bare baseline)
                errors.append(str(data)[:200])
                return 0
            return int(data["usage"]["completion_tokens"])

        settle_heap()
        (g0, f0), c0, t0 = GC.read(), cpu_seconds(), time.perf_counter()
        tokens = await asyncio.gather(*(one(p) for p in payloads))
        elapsed, cpu, (g1, f1) = time.perf_counter() - t0, cpu_seconds() - c0, GC.read()
    if errors:
        print(f"plain: {len(errors)} error responses, first: {errors[0]}", flush=True)
    return {"requests": len(payloads) - len(errors), "completion_tokens": sum(tokens), "elapsed_s": elapsed,
            "client_cpu_s": cpu, "errors": len(errors), "gc_s": g1 - g0, "full_collections": f1 - f0}


def rates(m: dict[str, Any]) -> tuple[float, float]:
    return m["requests"] / m["elapsed_s"], m["completion_tokens"] / m["elapsed_s"]


def per_pair(tokens: int, pairs: int) -> float | None:
    return round(tokens / pairs, 1) if pairs else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", choices=sorted(DEFAULTS), default="tiny")
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--warmup-prompts", type=int, help="prompts of the warm-up pair (default: --prompts, small: 8)")
    args = parser.parse_args()
    defaults = DEFAULTS[args.teacher]
    prompts, rounds_n = args.prompts or defaults["prompts"], args.rounds or defaults["rounds"]
    max_tokens = args.max_tokens or defaults["max_tokens"]
    warm_n = args.warmup_prompts or (8 if args.teacher == "small" else prompts)
    template = "demo" if args.teacher == "small" else "default"
    with server(args.teacher) as (url, model), tempfile.TemporaryDirectory(prefix="prefmix-bench-") as tmp:
        work = Path(tmp)
        config_path = write_inputs(work, args.teacher, url, model, prompts, args.concurrency, max_tokens)
        warm_dir = work / "warm"
        warm_dir.mkdir()
        warm_path = write_inputs(warm_dir, args.teacher, url, model, warm_n, args.concurrency, max_tokens)
        print(f"server {url} ({args.teacher}), {prompts} prompts, concurrency {args.concurrency}, {rounds_n} rounds", flush=True)
        nonce = fresh_nonce()
        _, payloads = run_prefmix(warm_path, template, "warmup", nonce)
        asyncio.run(_plain(url, renonce(payloads, nonce), args.concurrency))
        rounds = []
        for r in range(rounds_n):
            nonce = fresh_nonce()
            ours, payloads = run_prefmix(config_path, template, f"round-{r}", nonce)
            plain = asyncio.run(_plain(url, renonce(payloads, nonce), args.concurrency))
            (oq, ot), (pq_, pt) = rates(ours), rates(plain)
            rounds.append({"prefmix": ours, "plain": plain, "ratio": oq / pq_})
            cpu = 1000 * ours["client_cpu_s"] / ours["requests"], 1000 * plain["client_cpu_s"] / plain["requests"]
            print(f"round {r}: {ours['requests']} requests  prefmix {oq:7.2f} req/s {ot:7.0f} tok/s   "
                  f"plain {pq_:7.2f} req/s {pt:7.0f} tok/s   ratio {oq / pq_:.3f}   client CPU/request "
                  f"{cpu[0]:.2f} vs {cpu[1]:.2f} ms (collector {1000 * ours['gc_s'] / ours['requests']:.2f} vs "
                  f"{1000 * plain['gc_s'] / plain['requests']:.2f} ms, full passes {ours['full_collections']} vs "
                  f"{plain['full_collections']}); pairs {ours['records']} ({ours['expected_tie_breaks']} by expected)",
                  flush=True)
    total = {side: {k: sum(r[side][k] for r in rounds) for k in ("requests", "completion_tokens", "elapsed_s", "client_cpu_s", "gc_s")}
             for side in ("prefmix", "plain")}
    (oq, ot), (pq_, pt) = rates(total["prefmix"]), rates(total["plain"])
    cpu_ms = {side: 1000 * total[side]["client_cpu_s"] / total[side]["requests"] for side in total}
    tokens = sum(r["prefmix"]["teacher_tokens"] for r in rounds)
    pairs = sum(r["prefmix"]["records"] for r in rounds)
    by_expected = sum(r["prefmix"]["expected_tie_breaks"] for r in rounds)
    rejections: dict[str, int] = {}
    for r in rounds:
        for k, v in r["prefmix"]["rejections"].items():
            rejections[k] = rejections.get(k, 0) + v
    print(f"prefmix: {oq:.2f} req/s, {ot:.0f} output tok/s")
    print(f"plain  : {pq_:.2f} req/s, {pt:.0f} output tok/s")
    print(f"ratio (prefmix / plain): {oq / pq_:.3f} req/s, {ot / pt:.3f} tok/s")
    print(f"client CPU per request: prefmix {cpu_ms['prefmix']:.3f} ms, plain {cpu_ms['plain']:.3f} ms "
          f"(ratio {cpu_ms['prefmix'] / cpu_ms['plain']:.2f})")
    print(f"teacher tokens per accepted pair: integer scores {per_pair(tokens, pairs - by_expected)} "
          f"({pairs - by_expected} pairs) | expected scores {per_pair(tokens, pairs)} ({pairs} pairs); rejections {rejections}")
    print(json.dumps({
        "teacher": args.teacher,
        "ratio": round(oq / pq_, 4), "token_ratio": round(ot / pt, 4),
        "prefmix_req_s": round(oq, 3), "plain_req_s": round(pq_, 3),
        "prefmix_tok_s": round(ot, 1), "plain_tok_s": round(pt, 1),
        "client_cpu_ms_per_request": {k: round(v, 3) for k, v in cpu_ms.items()},
        "client_cpu_ratio": round(cpu_ms["prefmix"] / cpu_ms["plain"], 3),
        "round_client_cpu_ms": [{side: round(1000 * r[side]["client_cpu_s"] / r[side]["requests"], 3) for side in ("prefmix", "plain")}
                                for r in rounds],
        "collector_ms_per_request": {side: round(1000 * total[side]["gc_s"] / total[side]["requests"], 3) for side in total},
        "full_collections": {side: sum(r[side]["full_collections"] for r in rounds) for side in ("prefmix", "plain")},
        "round_ratios": [round(r["ratio"], 4) for r in rounds], "median_round_ratio": round(statistics.median(r["ratio"] for r in rounds), 4),
        "tokens_per_pair": {"integer": per_pair(tokens, pairs - by_expected), "expected": per_pair(tokens, pairs)},
        "pairs": {"integer": pairs - by_expected, "expected": pairs}, "prompts_total": prompts * rounds_n,
        "rejections": rejections,
        "requests_per_round": rounds[0]["prefmix"]["requests"], "concurrency": args.concurrency, "prompts": prompts,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
