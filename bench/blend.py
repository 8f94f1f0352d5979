"""Benchmark: prefmix blend vs a plain pyarrow copy vs datasets.interleave_datasets.

    .venv/bin/python bench/blend.py [--rows 5000000] [--data /work/bench-data] [--interleave-rows N]

1. Makes (once, cached under --data) a canonical-record input of --rows rows:
   prompts of ~100 words and responses of ~200 drawn from a Zipf-distributed
   30k-word pseudo-vocabulary with sentence and paragraph breaks (varied text
   that does not compress away), 64% human / 36% synthetic across many shards,
   with some duplicate records and prompts shared across sources.
2. Times, side by side on the same files:
   (a) prefmix's blend (all_human, 70/30 with medicine 90/10, teacher shares),
       run in a child process whose process tree RSS is sampled for the peak;
   (b) a plain pyarrow read-and-write of the same input files (same writer settings);
   (c) Hugging Face datasets: load the Parquet, interleave_datasets with
       probabilities 0.7/0.3, write Parquet (its fastest path: flatten_indices()
       before writing is twice as slow), on the whole input by default; with
       --interleave-rows N on the first files holding about N rows, extrapolated
       by throughput (said so in the output). About 30 minutes at 5M rows.
Throughput is input rows per second. The last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARD_ROWS = 50_000
CHUNK_ROWS = 10_000
VOCAB_SIZE = 30_000
CORPUS_WORDS = 40_000_000  # ~240 MB of text per generating process
DOMAINS = (("general", 0.40), ("finance", 0.20), ("medicine", 0.15), ("law", 0.15), ("code", 0.10))
TEACHERS = (("teacher-a", 0.6), ("teacher-b", 0.4))
HUMAN_SHARE = 0.64
SEPARATORS = [b" ", b". ", b", ", b".\n\n", b"? "]
SEPARATOR_P = [0.86, 0.08, 0.05, 0.003, 0.007]


# ----------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(piece bytes, piece offsets, piece lengths, word table, separator table).

    Pieces are the pseudo-words, then the separators. The tables hold piece ids
    in proportion to their probability (Zipf for words), so sampling a token is
    one integer draw and one gather.
    """
    rng = np.random.default_rng(20260101)
    lengths = np.clip(rng.poisson(5.0, VOCAB_SIZE), 1, 14)
    letter_p = np.linspace(2.0, 0.1, 26)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)[rng.choice(26, int(lengths.sum()), p=letter_p / letter_p.sum())]
    ends = np.cumsum(lengths)
    words = [letters[e - n : e].tobytes() for e, n in zip(ends, lengths)]
    pieces = words + SEPARATORS
    blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    piece_len = np.array([len(p) for p in pieces], dtype=np.int64)
    piece_off = np.concatenate([[0], np.cumsum(piece_len)[:-1]])
    zipf = 1.0 / np.arange(11, VOCAB_SIZE + 11, dtype=np.float64) ** 1.07
    cdf = np.cumsum(zipf / zipf.sum())
    word_table = np.minimum(np.searchsorted(cdf, (np.arange(1 << 20) + 0.5) / (1 << 20)), VOCAB_SIZE - 1).astype(np.int32)
    sep_table = (VOCAB_SIZE + np.searchsorted(np.cumsum(SEPARATOR_P), (np.arange(1 << 12) + 0.5) / (1 << 12))).astype(np.int32)
    return blob, piece_off, piece_len, word_table, sep_table


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[np.ndarray, np.ndarray]:
    """(bytes, word start offsets): a CORPUS_WORDS-word Zipf stream with sentence and paragraph breaks, made once per process."""
    blob, piece_off, piece_len, word_table, sep_table = vocabulary()
    rng = np.random.default_rng(424242)
    parts: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    base = 0
    step = 2_000_000
    for _ in range(CORPUS_WORDS // step):
        seq = np.empty(2 * step, dtype=np.int32)
        seq[0::2] = word_table[rng.integers(0, len(word_table), step)]
        seq[1::2] = sep_table[rng.integers(0, len(sep_table), step)]
        lengths = piece_len[seq]
        ends = np.cumsum(lengths)
        gather = np.repeat(piece_off[seq] - (ends - lengths), lengths)
        gather += np.arange(int(ends[-1]), dtype=np.int64)
        parts.append(blob[gather])
        starts.append(base + (ends - lengths)[0::2])
        base += int(ends[-1])
    return np.concatenate(parts), np.concatenate(starts)


def texts(rng: np.random.Generator, n: int, mean_words: int) -> "pa.Array":
    """n consecutive texts of mean_words +- 40% words from a random place in the corpus.

    Each text is a window of the word stream ending at a word (trailing separator
    trimmed); windows start at random places, so no two strings repeat, while
    building a column costs one trim pass instead of a gather per byte.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    data, word_start = corpus()
    counts = rng.integers(int(mean_words * 0.6), int(mean_words * 1.4) + 1, n)
    first = int(rng.integers(0, len(word_start) - int(counts.sum()) - 1))
    bounds = word_start[first + np.concatenate([[0], np.cumsum(counts)])]
    region = data[bounds[0] : bounds[-1]]
    offsets = (bounds - bounds[0]).astype(np.int32)
    raw = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(region))
    return pc.utf8_rtrim_whitespace(raw)


def shard(job: tuple[str, int, int, int, str]) -> str:  # (source, index, rows, human rows in total, folder)
    """Write one input shard (idempotent: skipped when it exists)."""
    import pyarrow as pa

    from prefmix.records import SCHEMA
    from prefmix.store import write_parquet

    source, index, rows, human_total, folder = job
    path = Path(folder) / source / f"{source}-{index:05d}.parquet"
    if path.exists():
        return str(path)
    seed = (1 if source == "human" else 2) * 1_000_003 + index
    rng = np.random.default_rng(seed)
    prompts = texts(np.random.default_rng(seed + 7), rows, 100)
    human_rows = min(SHARD_ROWS, human_total - index * SHARD_ROWS)
    if source == "synthetic" and human_rows > 0:
        # 2% of synthetic prompts repeat a prompt of the human shard with the same index
        human_prompts = texts(np.random.default_rng(1_000_003 + index + 7), human_rows, 100)
        k = min(rows, human_rows) // 50
        prompts = pa.concat_arrays([human_prompts.slice(0, k), prompts.slice(k)])
    chosen = texts(rng, rows, 200)
    rejected = texts(rng, rows, 200)

    printable = bytes(range(0x20, 0x7F))

    def norm(text: bytes) -> bytes:
        # generated text is ASCII: bytes.split() is exactly normalize_text here
        if not text.translate(None, printable) and b"  " not in text and text[:1] != b" " and text[-1:] != b" ":
            return text
        return b" ".join(text.split())

    binary = [column.cast(pa.binary()).to_pylist() for column in (prompts, chosen, rejected)]
    ids = [hashlib.sha256(b"\x1f".join((norm(p), norm(c), norm(r)))).hexdigest() for p, c, r in zip(*binary)]
    del binary
    names, weights = zip(*DOMAINS)
    domain = np.array(names)[rng.choice(len(names), rows, p=weights)]
    sha = hashlib.sha256(f"{source}{index}".encode()).hexdigest()
    columns: dict[str, pa.Array] = {
        "record_id": pa.array(ids, pa.string()),
        "prompt": prompts,
        "chosen": chosen,
        "rejected": rejected,
        "domain": pa.array(domain, pa.string()),
        "source": pa.array([source] * rows, pa.string()),
        "chosen_score": pa.array(rng.uniform(5, 10, rows)),
        "rejected_score": pa.array(rng.uniform(0, 5, rows)),
        "origin_uri": pa.array([f"s3://vendor/{source}/{index:05d}.parquet"] * rows, pa.string()),
        "origin_sha256": pa.array([sha] * rows, pa.string()),
        "origin_row": pa.array(np.arange(rows, dtype=np.int64)),
    }
    table = pa.table(columns)
    if source == "synthetic":
        tnames, tweights = zip(*TEACHERS)
        teacher = np.array(tnames)[rng.choice(len(tnames), rows, p=tweights)]
        generation = pa.StructArray.from_arrays(
            [pa.array(teacher, pa.string()), pa.array(["judge-x"] * rows, pa.string()), pa.array(["pointwise"] * rows, pa.string())],
            names=["teacher", "judge", "strategy"],
        )
        table = table.append_column("generation", generation)
    # 0.5% exact duplicate records: copies of earlier rows appended at the end of the shard
    dup = np.sort(rng.choice(rows - rows // 200, rows // 200, replace=False))
    table = pa.concat_tables([table.slice(0, rows - rows // 200), table.take(pa.array(dup))])
    full = []
    for field in SCHEMA:
        full.append(table.column(field.name).cast(field.type) if field.name in table.column_names else pa.nulls(rows, field.type))
    write_parquet(pa.Table.from_arrays(full, schema=SCHEMA), path)
    return str(path)


def make_data(folder: Path, rows: int, workers: int) -> tuple[list[str], list[str]]:
    human_rows = int(rows * HUMAN_SHARE)
    jobs: list[tuple[str, int, int, int, str]] = []
    for source, total in (("human", human_rows), ("synthetic", rows - human_rows)):
        count = max(1, -(-total // SHARD_ROWS))
        for i in range(count):
            n = min(SHARD_ROWS, total - i * SHARD_ROWS)
            jobs.append((source, i, n, human_rows, str(folder)))
    todo = [j for j in jobs if not (Path(j[4]) / j[0] / f"{j[0]}-{j[1]:05d}.parquet").exists()]
    if todo:
        started = time.perf_counter()
        print(f"generating {sum(j[2] for j in todo):,} rows in {len(todo)} shards under {folder} ...", flush=True)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for done, _ in enumerate(pool.map(shard, todo), 1):
                if done % 10 == 0:
                    print(f"  {done}/{len(todo)} shards", flush=True)
        print(f"generated in {time.perf_counter() - started:.0f}s", flush=True)
    human = sorted(str(p) for p in (folder / "human").glob("*.parquet"))
    synthetic = sorted(str(p) for p in (folder / "synthetic").glob("*.parquet"))
    return human, synthetic


# ----------------------------------------------------------------------------- contenders

BLEND_CONFIG = {
    "seed": 1,
    "domains": [d for d, _ in DOMAINS],
    "teachers": [{"name": t, "model": t, "endpoints": ["http://127.0.0.1:1/v1"]} for t, _ in TEACHERS],
    "blend": {
        "ratios": {"human": 0.7, "synthetic": 0.3},
        "domain_ratios": {"medicine": {"human": 0.9, "synthetic": 0.1}},
        "teacher_shares": {"teacher-a": 0.6, "teacher-b": 0.4},
        "size": "all_human",
        "eval_fraction": 0.05,
        "shard_rows": 100_000,
    },
}

CHILD = """
import json, sys, time
from pathlib import Path
from prefmix.config import parse
from prefmix.blending import blend
args = json.loads(sys.argv[1])
started = time.perf_counter()
result = blend(parse(args["config"]), args["human"], args["synthetic"], Path(args["out"]), "bench")
seconds = time.perf_counter() - started
import os, resource
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
# upper bound: this process's peak plus every key-pass worker at the largest worker's peak
bound = me.ru_maxrss + min(os.cpu_count() or 1, len(args["human"]) + len(args["synthetic"])) * kids.ru_maxrss
print(json.dumps({"seconds": seconds, "rows": result.rows, "dedup": result.summary["dedup"], "rss_bound_kb": bound}))
"""


def run_blend(human: list[str], synthetic: list[str], out: Path) -> dict:
    """The blend in a child process. Peak RSS: the sum over its process tree, sampled every 0.2 s
    (cheap enough not to slow the blend down), and an upper bound from getrusage."""
    import psutil

    payload = json.dumps({"config": BLEND_CONFIG, "human": human, "synthetic": synthetic, "out": str(out)})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, payload], stdout=subprocess.PIPE, cwd=REPO)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            total = 0
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = child.stdout.read().decode() if child.stdout else ""
    if child.returncode != 0:
        raise SystemExit(f"blend failed (exit {child.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(
        wall=wall,
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        peak_rss_mb=peak / 2**20,
        rss_bound_mb=result["rss_bound_kb"] / 1024,
    )
    return result


def run_copy(files: list[str], out: Path) -> tuple[float, float]:
    """Plain pyarrow: read each file, write it back with the blend's writer settings. (wall s, cpu s)"""
    import pyarrow.parquet as pq

    from prefmix.blending.write import ROW_GROUP_ROWS

    out.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for i, path in enumerate(files):
        table = pq.read_table(path)
        pq.write_table(table, out / f"part-{i:05d}.parquet", compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True)
        del table
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - started, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_interleave(human: list[str], synthetic: list[str], rows: int, total_rows: int, out: Path) -> tuple[float, int, dict[str, float]]:
    """datasets: load Parquet (map-style), interleave 0.7/0.3 by probability, write Parquet. (s, rows read, phases)"""
    from datasets import disable_progress_bars, interleave_datasets, load_dataset

    disable_progress_bars()
    fraction = min(1.0, rows / total_rows)
    h = human[: max(1, round(len(human) * fraction))]
    s = synthetic[: max(1, round(len(synthetic) * fraction))]
    cache = out / "hf-cache"
    started = time.perf_counter()
    hd = load_dataset("parquet", data_files=h, split="train", cache_dir=str(cache))
    sd = load_dataset("parquet", data_files=s, split="train", cache_dir=str(cache))
    loaded = time.perf_counter()
    mixed = interleave_datasets([hd, sd], probabilities=[0.7, 0.3], seed=1, stopping_strategy="first_exhausted")
    mixed_at = time.perf_counter()
    mixed.to_parquet(str(out / "interleaved.parquet"))
    seconds = time.perf_counter() - started
    phases = {"load": loaded - started, "interleave": mixed_at - loaded, "to_parquet": started + seconds - mixed_at}
    return seconds, len(hd) + len(sd), phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--interleave-rows", type=int, default=0, help="rows the datasets run reads, extrapolated (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="processes that generate the input")
    parser.add_argument("--generate-only", action="store_true", help="make (or complete) the cached input and stop")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    folder = args.data / f"rows-{args.rows}"
    human, synthetic = make_data(folder, args.rows, args.workers)
    if args.generate_only:
        return
    files = human + synthetic
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    size = sum(os.path.getsize(f) for f in files)
    print(f"input: {rows:,} rows, {len(files)} shards, {size / 2**30:.2f} GiB Parquet (zstd)", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="bench-blend-", dir=args.data))
    try:
        copy_s, copy_cpu = run_copy(files, scratch / "copy")
        shutil.rmtree(scratch / "copy", ignore_errors=True)
        print(f"(b) pyarrow copy:        {copy_s:8.1f}s  {rows / copy_s:12,.0f} rows/s  (cpu {copy_cpu:.0f}s)", flush=True)

        blend = run_blend(human, synthetic, scratch / "blend")
        shutil.rmtree(scratch / "blend", ignore_errors=True)
        blend_s = blend["wall"]
        print(
            f"(a) prefmix blend:       {blend_s:8.1f}s  {rows / blend_s:12,.0f} rows/s  "
            f"(cpu {blend['cpu']:.0f}s, wrote {blend['rows']:,} rows, peak RSS {blend['peak_rss_mb']:.0f} MiB "
            f"[bound {blend['rss_bound_mb']:.0f}], "
            f"dedup removed {blend['dedup']['exact_record_id']:,} exact + {blend['dedup']['duplicate_prompt']:,} prompt dups)",
            flush=True,
        )

        sub_rows = min(args.interleave_rows or rows, rows)
        inter_s, inter_rows, phases = run_interleave(human, synthetic, sub_rows, rows, scratch / "interleave")
        shutil.rmtree(scratch / "interleave", ignore_errors=True)
        inter_tp = inter_rows / inter_s
        note = "" if inter_rows >= rows else f" (run on {inter_rows:,} of {rows:,} rows; full size extrapolated at this throughput)"
        split = ", ".join(f"{k} {v:.0f}s" for k, v in phases.items())
        print(f"(c) datasets interleave: {inter_s:8.1f}s  {inter_tp:12,.0f} rows/s  ({split}){note}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    blend_tp, copy_tp = rows / blend_s, rows / copy_s
    result = {
        "rows": rows,
        "input_gib": round(size / 2**30, 3),
        "blend_rows_per_s": round(blend_tp),
        "copy_rows_per_s": round(copy_tp),
        "interleave_rows_per_s": round(inter_tp),
        "interleave_measured_rows": inter_rows,
        "interleave_extrapolated": inter_rows < rows,
        "vs_copy": round(blend_tp / copy_tp, 3),
        "vs_interleave": round(blend_tp / inter_tp, 2),
        "peak_rss_mb": round(blend["peak_rss_mb"], 1),
        "peak_rss_bound_mb": round(blend["rss_bound_mb"], 1),
        "vs_copy_cpu": round(copy_cpu / blend["cpu"], 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "blend_rows_written": blend["rows"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
