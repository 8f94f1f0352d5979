"""Prompt overlap checks: near-duplicates (MinHash) and eval-set contamination (word n-grams).

Both read the batch's distinct prompts once, tokenised in chunks (validators/ngrams.py): each chunk gives
the prompts' normalized keys, their MinHash signatures (validators/minhash.py) and their n-gram hashes,
which are tested against the eval sets' n-grams and dropped. Prompts of earlier published batches come
from the `report/prompt_sketch.parquet` each gated batch leaves (the keys and signatures of the prompts it
added to the dataset), or from their prompts when a batch has none.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.config import Gate
from prefmix.errors import ConfigError
from prefmix.store import write_parquet
from prefmix.validators import bitset, kernels, minhash, ngrams, threads
from prefmix.validators.earlier import earlier_batches, rebuilt_sketch
from prefmix.validators.measure import Measure, excerpt

# Prompts tokenised at a time: about 1.3M words, so every temporary array stays near 10 MB. Much larger
# arrays are far slower here (each fresh 100 MB buffer is mapped and zeroed by the kernel: 45x in a test).
CHUNK = 20_000
SKETCH = "prompt_sketch.parquet"
# How a sketch's keys and signatures were made (word hash, MinHash layout, shingle size), kept in its file's
# metadata: a sketch made another way is not comparable and the earlier batch's prompts are read instead.
SCHEME_KEY = "prefmix.prompt_sketch"
WORD_SCHEME = "words=pack8-fold-mix64;minhash=oph64-b16-optimal-densify;sig=fixed-binary"


SOURCE_BITS = {"human": 1, "synthetic": 2}
OTHER_SOURCE = 4
PROBE_BITS = 25  # a 4 MB bit set (cache-friendly) filters n-gram look-ups before the exact search


def scheme(gate: Gate) -> str:
    """How this gate makes a prompt sketch (the WORD_SCHEME and the shingle size)."""
    return f"{WORD_SCHEME};shingle={gate.near_duplicates.shingle}"


def sketch_scheme(file: Path) -> str | None:
    """How the sketch in `file` was made (None: a sketch from before schemes were recorded)."""
    metadata = pq.read_metadata(file).metadata or {}
    value = metadata.get(SCHEME_KEY.encode())
    return value.decode() if value else None


def _bit_table(grams: np.ndarray) -> np.ndarray:
    return bitset.table(grams & np.uint64((1 << PROBE_BITS) - 1), PROBE_BITS)


def _member(grams: np.ndarray, sorted_grams: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Which of grams are in sorted_grams (a table lookup first, the exact search on the few that pass)."""
    maybe = bitset.maybe(table, grams & np.uint64((1 << PROBE_BITS) - 1))
    out = np.zeros(len(grams), dtype=bool)
    if maybe.size and sorted_grams.size:
        where = np.minimum(np.searchsorted(sorted_grams, grams[maybe]), len(sorted_grams) - 1)
        out[maybe] = sorted_grams[where] == grams[maybe]
    return out


def _in_sorted(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of values are in sorted_values (ascending)."""
    if sorted_values.size == 0:
        return np.zeros(len(values), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[where] == values


def probe_stride(n: int) -> int:
    """Every n-gram of a prompt holds a (n - k + 1)-gram starting at a multiple of k (k = n // 2, counted
    from the prompt's first word): looking those up in all the eval set's (n - k + 1)-grams finds every
    prompt that can share an n-gram with it, for a k-th of the look-ups (13-grams: 8-grams at every 6th
    word, still far too long to meet by chance)."""
    return max(1, n // 2)


@dataclass(frozen=True)
class EvalSet:
    """The n-gram hashes (sorted, unique) and whole-prompt keys of the eval prompts, and the shorter
    probe grams (every position) that narrow the prompts to search."""

    n: int
    grams: np.ndarray
    keys: np.ndarray
    prompts: int
    table: np.ndarray = field(repr=False)
    probe: np.ndarray = field(repr=False)
    probe_table: np.ndarray = field(repr=False)

    @property
    def stride(self) -> int:
        return probe_stride(self.n)

    def contains(self, grams: np.ndarray) -> np.ndarray:
        """Which of grams are eval n-grams (a table lookup first, the exact search on the few that pass)."""
        return _member(grams, self.grams, self.table)

    def texts_sharing(self, w: ngrams.Words) -> np.ndarray:
        """Indices (ascending) of the texts of w that share an n-gram with the eval prompts: the probe grams
        at every stride-th word first (one compiled pass), then every n-gram of the texts they point at."""
        maybe = np.flatnonzero(kernels.probe(w.hashes, w.offsets, self.n - self.stride + 1, self.stride, ngrams.P,
                                             self.probe_table, PROBE_BITS, self.probe))
        if maybe.size == 0:
            return maybe
        grams, owner = ngrams.ngrams(w.select(maybe), self.n)
        return maybe[np.unique(owner[self.contains(grams)])]


@dataclass
class Sketch:
    """Distinct prompts of one batch: normalized key, signature, has-shingles, contaminated. The signatures
    are the first rows of `rows`, whose spare rows after them take earlier batches' prompts without a copy
    of the batch's own."""

    keys: np.ndarray
    rows: np.ndarray
    ok: np.ndarray
    contaminated: np.ndarray

    @property
    def sig(self) -> np.ndarray:
        return self.rows[: len(self.keys)]

    @property
    def spare(self) -> np.ndarray:
        return self.rows[len(self.keys) :]


def read_eval_prompts(path: str) -> pl.Series:
    """A Parquet file with a `prompt` column, or JSON Lines with a "prompt" key per line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"gate.contamination.eval_sets: {path}: file not found")
    try:
        if file.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            frame = pl.read_ndjson(file)
        else:
            frame = pl.read_parquet(file, columns=None)
    except Exception as exc:  # polars raises several types for unreadable files
        raise ConfigError(f"gate.contamination.eval_sets: {path}: not readable as "
                          f"{'JSON Lines' if file.suffix.lower() in ('.jsonl', '.json', '.ndjson') else 'Parquet'} "
                          f"({' '.join(str(exc).split())[:120]})") from None
    if "prompt" not in frame.columns or frame.schema["prompt"] not in (pl.String, pl.Categorical):
        raise ConfigError(f"gate.contamination.eval_sets: {path}: expected a text column 'prompt', columns are {frame.columns}")
    return frame["prompt"].cast(pl.String).drop_nulls()


@functools.lru_cache(maxsize=8)
def _eval_set(path: str, size: int, mtime_ns: int, n: int) -> EvalSet:
    prompts = read_eval_prompts(path)
    w = ngrams.words(prompts)
    prefix = ngrams.Prefix.of(w)
    grams = np.unique(ngrams.ngrams(w, n, prefix=prefix)[0])
    probe = np.unique(ngrams.ngrams(w, n - probe_stride(n) + 1, prefix=prefix)[0])
    return EvalSet(n, grams, np.unique(ngrams.text_keys(w, prefix)), prompts.len(), _bit_table(grams), probe,
                   _bit_table(probe))


def eval_sets(gate: Gate) -> list[tuple[str, EvalSet]]:
    """The configured eval sets, read once per process (keyed by size and mtime, so an edit is seen)."""
    out = []
    for path in gate.contamination.eval_sets:
        stat = Path(path).stat() if Path(path).is_file() else None
        if stat is None:
            raise ConfigError(f"gate.contamination.eval_sets: {path}: file not found")
        out.append((path, _eval_set(path, stat.st_size, stat.st_mtime_ns, gate.contamination.ngram)))
    return out


def sketch(prompts: pl.Series, gate: Gate, evals: list[EvalSet], spare: int = 0) -> Sketch:
    """Keys, signatures and contamination of `prompts`, CHUNK prompts at a time (chunks side by side on
    the machine's cores; each fills its own rows), with `spare` signature rows kept free after them."""
    n = prompts.len()
    keys = np.empty(n, dtype=np.uint64)
    rows = np.empty((n + spare, minhash.SLOTS), dtype=np.uint16)
    sig = rows[:n]
    ok = np.zeros(n, dtype=bool)
    contaminated = np.zeros(n, dtype=bool)

    def chunk(start: int) -> None:
        w = ngrams.words(prompts.slice(start, CHUNK))
        stop = start + len(w)
        minhash.signatures(w, gate.near_duplicates.shingle, keys[start:stop], sig[start:stop])
        ok[start:stop] = w.counts > 0
        if evals:
            hit = np.zeros(len(w), dtype=bool)
            for e in evals:
                hit[e.texts_sharing(w)] = True
                hit |= np.isin(keys[start:stop], e.keys)  # a short eval prompt repeated whole
            contaminated[start:stop] = hit

    threads.ordered_map(chunk, range(0, n, CHUNK))
    return Sketch(keys, rows, ok, contaminated)


@dataclass(frozen=True)
class Distinct:
    """The batch's distinct prompt texts (in order of first appearance) and which one each row has."""

    prompts: pl.Series
    bits: np.ndarray  # uint8: OR of the source bits of the rows with that prompt
    of_row: np.ndarray  # int64: the distinct prompt of each row

    def rows(self, mask: np.ndarray) -> np.ndarray:
        """Row numbers (ascending) whose distinct prompt is selected by mask."""
        return np.flatnonzero(mask[self.of_row]) if mask.any() else np.empty(0, dtype=np.int64)


def _distinct_prompts(df: pl.DataFrame) -> Distinct:
    """Grouped by a 64-bit hash of the text (4x cheaper than by the strings; a collision needs ~2^32
    prompts); when every prompt is distinct (the usual batch) no text is copied, nor are the hashes ranked."""
    source = pl.col("source").replace_strict(SOURCE_BITS, default=OTHER_SOURCE, return_dtype=pl.UInt8)
    hashed = df.select(pl.col("prompt").hash(0x9E37)).to_series()
    if hashed.n_unique() == df.height:  # distinct hashes: every row its own prompt, in row order
        rows = np.arange(df.height, dtype=np.int64)
        return Distinct(df["prompt"], df.select(source).to_series().to_numpy().copy(), rows)
    codes = (hashed.rank("dense").cast(pl.Int64) - 1).to_numpy()
    n = int(codes.max()) + 1 if len(codes) else 0
    first = np.full(n, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))
    order = np.argsort(first)  # distinct prompts in order of first appearance
    renumber = np.empty(n, dtype=np.int64)
    renumber[order] = np.arange(n, dtype=np.int64)
    of_row = renumber[codes]
    bits = np.zeros(n, dtype=np.uint8)
    np.bitwise_or.at(bits, of_row, df.select(source).to_series().to_numpy())
    prompts = df["prompt"] if n == len(codes) else df["prompt"].gather(first[order])
    return Distinct(prompts, bits, of_row)


def measure(df: pl.DataFrame, gate: Gate, batch_dir: Path, keep: int, active: set[str]) -> tuple[list[Measure], dict[str, Any]]:
    """The near_duplicates and contamination measures (those in `active`) and the sketch to keep."""
    evals = eval_sets(gate) if "contamination" in active and gate.contamination.eval_sets else []
    distinct = _distinct_prompts(df)
    earlier = _earlier(batch_dir, gate) if "near_duplicates" in active else _no_prompts()
    sk = sketch(distinct.prompts, gate, [e for _, e in evals], spare=len(earlier[0]))
    out: list[Measure] = []
    kept: dict[str, Any] = {}
    if "near_duplicates" in active:
        near, kept = _near_duplicates(df, distinct, sk, gate, earlier, keep)
        out.append(near)
    if "contamination" in active:
        out.append(_contamination(df, distinct, sk, gate, evals, keep))
    return out, kept


def _no_prompts() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.uint64), np.empty((0, minhash.SLOTS), np.uint16)


def _earlier(batch_dir: Path, gate: Gate) -> tuple[np.ndarray, np.ndarray]:
    """Keys (sorted) and signatures of the prompts of earlier published batches, each key once."""
    if not gate.near_duplicates.earlier_batches:
        return _no_prompts()
    keys, sigs = [], []
    for folder in earlier_batches(batch_dir):
        # the batch's own sketch, else one rebuilt by an earlier gate, else rebuilt now from its prompts and kept
        # (after an upgrade every published sketch is of another scheme: each is rebuilt once, not every night)
        found = [f for f in (folder / "report" / SKETCH, rebuilt_sketch(folder))
                 if f.is_file() and sketch_scheme(f) == scheme(gate)]
        if found:
            key, sig = read_sketch(found[0])
            keys.append(key)
            sigs.append(sig)
            continue
        files = sorted((folder / "data").glob("*.parquet"))
        if not files:
            continue
        prompts = pl.read_parquet(files, columns=["prompt"])["prompt"].unique()
        sk = sketch(prompts, gate, [])
        keys.append(sk.keys[sk.ok])
        sigs.append(sk.sig[sk.ok])
        write_sketch({"keys": keys[-1], "sig": sigs[-1], "scheme": scheme(gate)}, rebuilt_sketch(folder))
    if not keys:
        return _no_prompts()
    all_keys, all_sigs = np.concatenate(keys), np.concatenate(sigs)
    _, first = np.unique(all_keys, return_index=True)
    return all_keys[first], all_sigs[first]


def _near_duplicates(df: pl.DataFrame, distinct: Distinct, sk: Sketch, gate: Gate,
                     earlier: tuple[np.ndarray, np.ndarray], keep: int) -> tuple[Measure, dict[str, Any]]:
    cfg = gate.near_duplicates
    # One document per normalized prompt: texts equal up to case and spacing are the same prompt.
    sorted_keys = np.sort(sk.keys)
    if not (sorted_keys[1:] == sorted_keys[:-1]).any():  # the usual batch: every distinct text is its own prompt
        cur_keys, doc_bits, doc_ok = sk.keys, distinct.bits, sk.ok
        first = np.arange(len(sk.keys), dtype=np.int64)
    else:
        docs = (
            pl.DataFrame({"key": pl.Series(sk.keys, dtype=pl.UInt64), "bits": distinct.bits, "ok": sk.ok})
            .with_row_index("i")
            .group_by("key").agg(pl.col("bits").bitwise_or(), pl.col("ok").first(), pl.col("i").first())
            .sort("key")
        )
        cur_keys, doc_bits, doc_ok = docs["key"].to_numpy(), docs["bits"].to_numpy(), docs["ok"].to_numpy()
        first = docs["i"].to_numpy().astype(np.int64)
        sorted_keys = cur_keys
    n_cur = len(cur_keys)
    earlier_keys, earlier_sig = earlier  # keys sorted
    in_earlier = _in_sorted(earlier_keys, cur_keys)
    only = ~_in_sorted(sorted_keys, earlier_keys)
    n_only = int(only.sum())
    whole = n_cur == len(sk.sig) and first[-1:].tolist() == [n_cur - 1]
    if whole and n_only <= len(sk.spare):  # the earlier prompts go in the rows kept free after the batch's
        sk.spare[:n_only] = earlier_sig[only]
        pool_sig = sk.rows[: n_cur + n_only]
    else:
        own_sig = sk.sig if whole else sk.sig[first]
        pool_sig = np.concatenate([own_sig, earlier_sig[only]]) if n_only else own_sig
    bits = np.concatenate([doc_bits.astype(np.uint8), np.zeros(n_only, np.uint8)])
    published = np.concatenate([in_earlier, np.ones(n_only, bool)])
    usable = np.flatnonzero(np.concatenate([doc_ok, np.ones(n_only, bool)]))

    pairs = np.empty((0, 2), np.int64)
    if usable.size > 1:
        whole = usable.size == len(pool_sig)
        pairs = usable[minhash.candidate_pairs(pool_sig if whole else pool_sig[usable])]
    sim = minhash.similarity(pool_sig, pairs)
    pairs = pairs[sim >= cfg.threshold]
    flagged = np.zeros(len(pool_sig), dtype=bool)
    partner = np.full(len(pool_sig), -1, dtype=np.int64)
    for a, b in ((0, 1), (1, 0)):
        x, y = pairs[:, a], pairs[:, b]
        one_source = (bits[x] == bits[y]) & ((bits[x] & (bits[x] - 1)) == 0)
        cross = (x < n_cur) & (y < n_cur) & ~one_source  # another source in this batch
        new_vs_published = (x < n_cur) & ~published[x] & published[y]  # a new prompt near a published one
        hit = cross | new_vs_published
        flagged[x[hit]] = True
        partner[x[hit]] = y[hit]
    rows = distinct.rows(np.isin(sk.keys, cur_keys[flagged[:n_cur]]))
    share = len(rows) / df.height if df.height else 0.0

    samples = []
    if len(rows) and keep:
        texts = distinct.prompts
        doc_of_key = {int(k): j for j, k in enumerate(cur_keys)}
        for row in rows[:keep].tolist():
            full = df.row(row, named=True)
            r = {k: full[k] for k in ("record_id", "source", "domain", "prompt")}
            key = int(sk.keys[distinct.of_row[row]])
            other = int(partner[doc_of_key[int(key)]])
            near = excerpt(texts[int(first[other])]) if 0 <= other < n_cur else "(a prompt of an earlier published batch)"
            samples.append({**r, "prompt": excerpt(r["prompt"]), "near": near})

    new = ~in_earlier & doc_ok
    kept = {"keys": cur_keys[new], "sig": pool_sig[:n_cur][new], "scheme": scheme(gate)}
    measure_ = Measure(
        "near_duplicates", share, max_value=cfg.max_share,
        observed={"rows": int(len(rows)), "share": round(share, 6), "prompts": n_cur, "pairs": int(len(pairs)),
                  "earlier_prompts": int(len(earlier_keys))},
        note=f"estimated Jaccard of word {cfg.shingle}-gram shingles >= {cfg.threshold:g}",
        samples=samples,
        description="share of rows whose prompt nearly duplicates one from another source or an earlier batch "
                    "<= gate.near_duplicates.max_share",
    )
    return measure_, kept


def _contamination(df: pl.DataFrame, distinct: Distinct, sk: Sketch, gate: Gate,
                   evals: list[tuple[str, EvalSet]], keep: int) -> Measure:
    cfg = gate.contamination
    description = f"share of rows whose prompt shares a word {cfg.ngram}-gram with an eval set <= gate.contamination.max_share"
    if not evals:
        return Measure("contamination", None, max_value=cfg.max_share, observed=None,
                       note="not applicable: no gate.contamination.eval_sets", description=description)
    rows = distinct.rows(sk.contaminated)
    share = len(rows) / df.height if df.height else 0.0
    samples = [{**r, "prompt": excerpt(r["prompt"])}
               for r in df[rows[:keep].tolist()].select("record_id", "source", "domain", "prompt").iter_rows(named=True)]
    return Measure(
        "contamination", share, max_value=cfg.max_share,
        observed={"rows": int(len(rows)), "share": round(share, 6), "prompts": int(sk.contaminated.sum()),
                  "eval_sets": {Path(p).name: e.prompts for p, e in evals}},
        note=f"lowercase word {cfg.ngram}-grams shared with {sum(e.prompts for _, e in evals)} eval prompts",
        samples=samples,
        description=description,
    )


def write_sketch(kept: dict[str, Any], path: Path) -> Path | None:
    """Keep the keys and signatures of the prompts a batch adds at `path` (report/SKETCH), for the gates of
    later batches (None: nothing kept). Signatures are one fixed-size binary cell each, written and read without a copy per row."""
    if not kept:
        return None
    sig = np.ascontiguousarray(kept["sig"], dtype=np.uint16)
    table = pa.table({
        "key": pa.array(kept["keys"], pa.uint64()),
        "sig": pa.FixedSizeBinaryArray.from_buffers(pa.binary(2 * minhash.SLOTS), len(sig), [None, pa.py_buffer(sig)]),
    }).replace_schema_metadata({SCHEME_KEY: kept["scheme"]})
    return write_parquet(table, path, row_group_size=1 << 20, compression="none", statistics=False,
                         dictionary=False)


def read_sketch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, signatures) of a sketch written by write_sketch."""
    table = pq.read_table(file)
    sig = table["sig"].combine_chunks()
    width = 2 * minhash.SLOTS
    data = np.frombuffer(sig.buffers()[1], dtype=np.uint8)[sig.offset * width : (sig.offset + len(sig)) * width]
    return table["key"].to_numpy(), data.view(np.uint16).reshape(-1, minhash.SLOTS)


def check_eval_sets(gate: Gate) -> None:
    """Pre-flight: every eval set exists and has a prompt column."""
    for path in gate.contamination.eval_sets:
        read_eval_prompts(path)
