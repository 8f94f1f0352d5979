"""Benchmark: gate a 1M-row canonical batch with every check on and blend the same rows, side by side.

    .venv/bin/python bench/gate.py [--rows 1000000] [--earlier-rows 100000] [--data DIR] [--keep] [--rounds 3]

1. Builds (with numpy vectorised sampling), in a store under DIR:
   - staging/bench: a canonical batch of --rows rows: prompt/chosen/rejected of 30-100 words each from a
     Zipf-weighted English vocabulary with punctuation and numbers, 70/30 human/synthetic in every
     domain, judge scores with a positive margin, annotation agreement for human rows, 5% eval, 0.2% rows
     with an e-mail or phone number (under the PII threshold). Files are single-source shards, so the same
     files are the gate's batch and the blend's inputs;
   - batches/bench-earlier: an earlier published batch of --earlier-rows rows, gated once while building
     (untimed), so its report/prompt_sketch.parquet is there as after a real nightly;
   - eval.jsonl: an eval set of 10,000 prompts (JSON Lines), 20 of them copied from the batch.
2. Times, each in its own child process on the same files:
   (a) the gate: run_gate on staging/bench with every check on: the content checks, near-duplicates
       (against the other source and the earlier batch) and contamination (the eval set), GX Data Docs
       and the HTML report (the GX import and context set-up timed apart: a worker pays them once);
   (b) the blend: blending.blend.blend over the same shards (all_human, 70/30).
(a) and (b) alternate for --rounds rounds (default 3). The last line is JSON with the median round's
gate_over_blend (warm gate / blend, wall clock; target <= 0.5) and every round's, gate_cold_over_blend
(including the GX import) and gate_over_blend_cpu (the same ratio in CPU seconds, steadier when the machine
is shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOMAINS = ("general", "finance", "medicine", "law")
SHARD_ROWS = 100_000
WORDS = (
    "the of and to a in is that for it as with was on be by this are or from at an not have which but you they "
    "can more their all has one will if been would there about when what so also other into time than only some "
    "could these two may first then do any like new most such over should people after because through where "
    "much before between each well risk rate fund loan budget income tax interest market payment account policy "
    "patient dose symptom treatment doctor blood pressure infection therapy diagnosis vaccine clinic lease tenant "
    "contract court claim notice landlord employer agreement clause deposit evidence statute plan answer question "
    "example step reason result careful simple clear important usually often however therefore first second "
    "finally check consider review explain describe compare suggest avoid choose improve reduce increase monthly "
    "weekly year percent amount total cost price value method approach option problem solution helpful detail"
).split() + ["2024", "15", "3.5", "100", "30", "10", "2", "7"]


def vocabulary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pieces = [w.encode() for w in WORDS] + [b" ", b". ", b", ", b"? "]
    blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    zipf = 1.0 / np.arange(2, len(WORDS) + 2, dtype=np.float64) ** 1.05
    return blob, offsets, lengths, np.cumsum(zipf / zipf.sum())


def texts(rng: np.random.Generator, vocab: tuple, n: int, low: int = 30, high: int = 100) -> "pa.Array":
    """n texts of low..high words, built by vectorised gathers (no Python loop per row)."""
    import pyarrow as pa

    blob, piece_off, piece_len, cdf = vocab
    n_words = len(WORDS)
    counts = rng.integers(low, high + 1, n)
    tokens = int(counts.sum())
    words = np.minimum(np.searchsorted(cdf, rng.random(tokens)), n_words - 1)
    seps = n_words + rng.choice(4, tokens, p=[0.86, 0.08, 0.05, 0.01])
    seq = np.empty(2 * tokens, dtype=np.int64)
    seq[0::2], seq[1::2] = words, seps
    seq = np.delete(seq, 2 * (np.cumsum(counts) - 1) + 1)  # no separator after a text's last word
    lengths = piece_len[seq]
    starts = np.cumsum(lengths) - lengths
    data = blob[np.repeat(piece_off[seq] - starts, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)]
    ends = np.cumsum(2 * counts - 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)[ends - 1]]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def make_batch(folder: Path, rows: int, seed: int = 7) -> list[Path]:
    """Single-source canonical shards under folder/data; returns their paths."""
    import pyarrow as pa

    from prefmix.records import ANNOTATION, GENERATION, SCHEMA
    from prefmix.store import write_parquet

    vocab = vocabulary()
    rng = np.random.default_rng(seed)
    per_domain = rows // len(DOMAINS)
    paths: list[Path] = []
    for source, share in (("human", 0.7), ("synthetic", 0.3)):
        n_source = [round(per_domain * share) for _ in DOMAINS]
        domain = np.repeat(np.array(DOMAINS), n_source)
        for part, start in enumerate(range(0, len(domain), SHARD_ROWS)):
            d = domain[start : start + SHARD_ROWS]
            n = len(d)
            prompt, chosen, rejected = (texts(rng, vocab, n) for _ in range(3))
            if source == "human":  # a few rows carry contact details: measured, under the PII threshold
                chosen = chosen.to_pylist()
                for i in rng.choice(n, n // 500, replace=False):
                    chosen[i] += " write to help.desk@example.com or call 555-123-4567"
                chosen = pa.array(chosen, pa.string())
            ids = [
                hashlib.sha256("\x1f".join(t).encode()).hexdigest()
                for t in zip(prompt.to_pylist(), chosen.to_pylist(), rejected.to_pylist())
            ]
            human = source == "human"
            given = {"teacher": "teacher-a", "judge": "judge-x", "strategy": "pointwise"}
            best = rng.uniform(6, 10, n)
            table = {
                "record_id": pa.array(ids, pa.string()),
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "domain": pa.array(d, pa.string()),
                "source": pa.array(np.full(n, source), pa.string()),
                "chosen_score": pa.array(np.ones(n) if human else best),
                "rejected_score": pa.array(np.zeros(n) if human else best - rng.uniform(1, 5, n)),
                "origin_uri": pa.array(np.full(n, f"file:///bench/{source}-{part:03d}.parquet"), pa.string()),
                "origin_sha256": pa.array(np.full(n, hashlib.sha256(f"{source}{part}".encode()).hexdigest()), pa.string()),
                "origin_row": pa.array(np.arange(n, dtype=np.int64)),
                "generation": pa.nulls(n, GENERATION) if human else pa.StructArray.from_arrays(
                    [pa.array(np.full(n, given[f.name]), f.type) if f.name in given else pa.nulls(n, f.type)
                     for f in GENERATION],
                    fields=list(GENERATION),
                ),
                "annotation": pa.StructArray.from_arrays(
                    [pa.array(np.full(n, "acme")), pa.nulls(n, pa.list_(pa.string())), pa.array(np.full(n, 3), pa.int32()),
                     pa.array(rng.uniform(0.6, 1.0, n)), pa.array(np.ones(n, dtype=np.int32)), pa.array(np.zeros(n, bool))],
                    fields=list(ANNOTATION),
                ) if human else pa.nulls(n, ANNOTATION),
                "context": pa.nulls(n, SCHEMA.field("context").type),
                "batch_id": pa.array(np.full(n, "bench"), pa.string()),
                "split": pa.array(np.where(rng.random(n) < 0.05, "eval", "train"), pa.string()),
            }
            table |= {f.name: pa.nulls(n, f.type) for f in SCHEMA if f.name not in table}  # optional columns
            path = folder / "data" / f"{source}-{part:03d}.parquet"
            write_parquet(pa.table(table, schema=SCHEMA), path)
            paths.append(path)
    return paths


EVAL_PROMPTS = 10_000
EVAL_FROM_BATCH = 20  # eval prompts copied from the batch: contamination finds rows, under its threshold


def config_data(store: Path | None = None) -> dict:
    gate: dict = {"min_agreement": 0.5}
    if store is not None:
        # Every check on (the default severities), and the eval set for contamination; the copied prompts
        # are measured (rows > 0) but kept under the threshold so the verdict stays pass.
        gate["contamination"] = {"eval_sets": [str(store / "eval.jsonl")], "max_share": 0.001}
    return {
        "seed": 1,
        "domains": list(DOMAINS),
        "blend": {"ratios": {"human": 0.7, "synthetic": 0.3}, "size": "all_human", "eval_fraction": 0.05,
                  "shard_rows": 100_000},
        "gate": gate,
    }


def batch_dir(store: Path) -> Path:
    return store / "staging" / "bench"


def make_store(store: Path, rows: int, earlier_rows: int) -> None:
    """The batch, an earlier published batch (gated, so it has its prompt sketch) and the eval set."""
    import pyarrow.parquet as pq

    from prefmix.config import parse
    from prefmix.store import atomic_write_json

    make_batch(batch_dir(store), rows)
    if earlier_rows:
        earlier = store / "batches" / "bench-earlier"
        make_batch(earlier, earlier_rows, seed=11)
        atomic_write_json(earlier / "manifest.json", {"batch_id": "bench-earlier", "status": "published"})
        from prefmix.validators.gate import run_gate

        run_gate(parse(config_data()), earlier)
    rng = np.random.default_rng(5)
    prompts = texts(rng, vocabulary(), EVAL_PROMPTS - EVAL_FROM_BATCH).to_pylist()
    first = sorted((batch_dir(store) / "data").glob("*.parquet"))[0]
    prompts += pq.read_table(first, columns=["prompt"]).column("prompt").to_pylist()[:EVAL_FROM_BATCH]
    (store / "eval.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")


def refresh_earlier_sketch(store: Path) -> None:
    """Re-gate the earlier batch (untimed) when its prompt sketch was made another way than today's gate
    makes it (data kept with --data from an older prefmix), so the timed gate reads it as after a nightly."""
    from prefmix.config import parse
    from prefmix.validators import overlap
    from prefmix.validators.gate import run_gate

    earlier = store / "batches" / "bench-earlier"
    file = earlier / "report" / overlap.SKETCH
    config = parse(config_data())
    if earlier.is_dir() and (not file.is_file() or overlap.sketch_scheme(file) != overlap.scheme(config.gate)):
        print("earlier batch's prompt sketch is stale: gating it again (untimed) ...", flush=True)
        run_gate(config, earlier)


# ---------------------------------------------------------------- child processes (one contender each)

def cpu_s() -> float:
    """CPU seconds of this process and its finished children (all threads): robust to a busy machine."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child_gate(store: Path) -> dict:
    from prefmix.config import parse

    started = time.perf_counter()
    from prefmix.validators import suite

    suite._context()  # GX import + ephemeral context: once per process
    import matplotlib.figure  # noqa: F401  (the report's plotting library: imported once per process too)
    from prefmix.validators import kernels
    from prefmix.validators.gate import run_gate

    kernels.warm()  # numba and the compiled kernels loaded from its on-disk cache: once per process too
    ready, cpu = time.perf_counter(), cpu_s()

    result = run_gate(parse(config_data(store)), batch_dir(store))
    done = time.perf_counter()
    figures = {c.name: c.observed for c in result.checks if c.name in ("near_duplicates", "contamination", "repetition")}
    return {"import_s": ready - started, "gate_s": done - ready, "gate_cpu_s": cpu_s() - cpu, "verdict": result.verdict,
            "failed": result.failed_critical + result.failed_warning, "rows": result.check("row_count").observed,
            "checks": len(result.checks), "figures": figures}


def child_blend(folder: Path, out: Path) -> dict:
    from prefmix.config import parse

    started, cpu = time.perf_counter(), cpu_s()
    from prefmix.blending.blend import blend

    files = sorted(str(p) for p in (batch_dir(folder) / "data").glob("*.parquet"))
    human = [f for f in files if Path(f).name.startswith("human-")]
    synthetic = [f for f in files if Path(f).name.startswith("synthetic-")]
    result = blend(parse(config_data()), human, synthetic, out, "bench")
    return {"blend_s": time.perf_counter() - started, "blend_cpu_s": cpu_s() - cpu, "rows": result.rows}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--earlier-rows", type=int, default=100_000, help="rows of the earlier published batch")
    parser.add_argument("--data", type=Path, help="batch folder (default: a temp dir, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--rounds", type=int, default=3, help="gate/blend pairs; the median round is reported")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder = args.child[0], Path(args.child[1])
        print(json.dumps(child_gate(folder) if kind == "gate" else child_blend(folder, Path(args.child[2]))))
        return

    folder = args.data or Path(tempfile.mkdtemp(prefix="prefmix-gate-bench-"))
    try:
        if not (folder / "eval.jsonl").is_file():
            started = time.perf_counter()
            print(f"building {args.rows:,} rows (+{args.earlier_rows:,} earlier) under {folder} ...", flush=True)
            make_store(folder, args.rows, args.earlier_rows)
            print(f"built in {time.perf_counter() - started:.1f}s", flush=True)
        refresh_earlier_sketch(folder)
        size = sum(p.stat().st_size for p in (batch_dir(folder) / "data").glob("*.parquet"))
        print(f"batch: {size / 1e6:.0f} MB of Parquet", flush=True)
        rounds = []
        for r in range(args.rounds):  # gate and blend alternate, so a busy spell of the machine hits both
            gate = run_child("gate", str(folder))
            print(f"round {r}: gate {gate['gate_s']:.2f}s for {gate['rows']:,} rows, {gate['checks']} checks "
                  f"(+{gate['import_s']:.2f}s GX import/context and kernels once per process), verdict {gate['verdict']} "
                  f"{gate['failed']}", flush=True)
            blend_out = Path(tempfile.mkdtemp(prefix="prefmix-gate-bench-blend-"))
            try:
                blend = run_child("blend", str(folder), str(blend_out))
            finally:
                shutil.rmtree(blend_out, ignore_errors=True)
            print(f"         blend {blend['blend_s']:.2f}s for {blend['rows']:,} output rows; cpu gate "
                  f"{gate['gate_cpu_s']:.2f}s, blend {blend['blend_cpu_s']:.2f}s; ratio {gate['gate_s'] / blend['blend_s']:.3f}",
                  flush=True)
            rounds.append((gate, blend))
        print(f"       {json.dumps(rounds[-1][0]['figures'])}", flush=True)
        ratios = [g["gate_s"] / b["blend_s"] for g, b in rounds]
        gate, blend = rounds[ratios.index(statistics.median_low(ratios))]  # the median round
        print(json.dumps({
            "rows": gate["rows"],
            "rounds": len(rounds),
            "gate_s": round(gate["gate_s"], 3),
            "gx_import_s": round(gate["import_s"], 3),
            "blend_s": round(blend["blend_s"], 3),
            "gate_over_blend": round(gate["gate_s"] / blend["blend_s"], 3),
            "gate_over_blend_rounds": [round(r, 3) for r in ratios],
            "gate_cold_over_blend": round((gate["gate_s"] + gate["import_s"]) / blend["blend_s"], 3),
            "gate_cpu_s": round(gate["gate_cpu_s"], 3),
            "blend_cpu_s": round(blend["blend_cpu_s"], 3),
            "gate_over_blend_cpu": round(gate["gate_cpu_s"] / blend["blend_cpu_s"], 3),
            "verdict": gate["verdict"],
        }))
    finally:
        if not args.keep and args.data is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
