"""Every gate check's measurement, computed with Polars over the whole batch.

Each check becomes one `Measure`: a number that Great Expectations then asserts
to lie between bounds (see validators/suite.py). The heavy work (lengths, PII
regexes, shares, joins) stays here, vectorised; GX only sees one row of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.config import Config
from prefmix.errors import InputError
from prefmix.records import POLARS_SCHEMA, SCHEMA, SOURCES, SPLITS, upcast
from prefmix.validators import content, textbytes, threads
from prefmix.validators.measure import Measure, flagged_samples, rows_samples

TEXT = ("prompt", "chosen", "rejected")
# Columns the gate reads; the rest of the canonical schema is only type-checked.
NEEDED = ("record_id", *TEXT, "domain", "source", "chosen_score", "rejected_score", "split", "kind", "annotation")
FINISH = "finish_reasons"  # generation.finish_reasons, read on its own (the whole struct costs more than the texts)
# generation fields read on their own, with their types: the finish reasons and the judge's expected scores
GENERATION_FIELDS = {FINISH: pl.List(pl.String), "chosen_expected": pl.Float64, "rejected_expected": pl.Float64}

# One combined pattern so each candidate text is scanned once. Kinds: e-mail
# address; North-American phone number (separators, optional +1 / brackets);
# international +CC number; US SSN. ASCII classes ([0-9], not Unicode \d) keep
# the regex DFA small. Every kind needs an "@", a "+" or four consecutive digits
# (a phone number or SSN ends in them), so rows are first narrowed with that
# prefilter, which the regex engine runs about as fast as literal searches (the
# full pattern on all text costs 5x more).
PII_PATTERN = "|".join(
    [
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}",
        r"\+[0-9]{1,3}[ .-][0-9]{2,4}[ .-][0-9]{3,4}[ .-]?[0-9]{2,4}",
        r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
    ]
)
PII_PREFILTER = r"[@+]|[0-9]{4}"
# Whitespace that normalize_text would collapse; prompts without any are already normal.
_SPACING = ("  ", "\n", "\t", "\r", "\u00a0", "\u3000")


@dataclass
class Batch:
    """The gated rows plus what reading them revealed about the schema and the text encoding."""

    frame: pl.DataFrame
    schema_problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    invalid_utf8: int = 0  # rows whose text was not valid UTF-8 (repaired to U+FFFD, flagged by text_integrity)


def data_files(batch_dir: Path) -> list[Path]:
    files = sorted((batch_dir / "data").glob("*.parquet"))
    if not files:
        raise InputError(f"{batch_dir / 'data'}: no .parquet files to gate")
    return files


def _schema_problems(path: Path, schema: pa.Schema) -> list[str]:
    problems = []
    for wanted in SCHEMA:
        if wanted.name not in schema.names:
            problems.append(f"{path.name}: column {wanted.name} is missing")
            continue
        got = schema.field(wanted.name).type
        if not got.equals(wanted.type) and not (
            pa.types.is_large_string(got) and pa.types.is_string(wanted.type)
        ):
            problems.append(f"{path.name}: column {wanted.name} is {got}, expected {wanted.type}")
    return problems


def read_batch(batch_dir: Path, with_annotation: bool = True) -> Batch:
    """Read the columns the gate needs from batch_dir/data/*.parquet, coercing what it can."""
    files = data_files(batch_dir)
    wanted = [c for c in NEEDED if with_annotation or c != "annotation"]
    read = threads.ordered_map(lambda path: _read_file(path, wanted), files)  # files side by side
    problems = [p for _, file_problems, _ in read for p in file_problems]
    frames = [frame for frame, _, _ in read]
    invalid = sum(bad for _, _, bad in read)
    return Batch(pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0], problems, files, invalid)


def _read_file(path: Path, wanted: list[str]) -> tuple[pl.DataFrame, list[str], int]:
    """One data file: its coerced frame, its schema problems and its rows with invalid UTF-8."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    problems = _schema_problems(path, schema)
    present = [c for c in wanted if c in schema.names]
    bad = 0
    try:
        frame = pl.read_parquet(path, columns=present)
    except pl.exceptions.ComputeError as exc:
        if "utf-8" not in str(exc).lower():
            raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        frame, bad = _read_repairing(path, present)
    frame = _coerce(frame, wanted)
    return frame.with_columns(_chunked_like(frame, _generation_fields(path, frame.height))), problems, bad


def _chunked_like(frame: pl.DataFrame, columns: list[pl.Series]) -> list[pl.Series]:
    """columns cut into the frame's chunks (Parquet row groups): a frame whose columns are chunked alike is
    not copied into one chunk per column by each later operation that lines rows up (400 MB of text per
    file, again and again)."""
    lengths = frame.to_series(0).chunk_lengths() if frame.width else []
    if len(lengths) <= 1:
        return columns
    starts = np.cumsum([0, *lengths[:-1]])
    return [pl.concat([c.slice(int(a), n) for a, n in zip(starts, lengths)], rechunk=False) for c in columns]


def _generation_fields(path: Path, rows: int) -> list[pl.Series]:
    """GENERATION_FIELDS of a file's generation struct; a field all null by the file's metadata is not read."""
    empty = [pl.Series(name, [None] * rows, dtype=dtype) for name, dtype in GENERATION_FIELDS.items()]
    try:
        meta = pq.ParquetFile(path).metadata
        wanted = [name for name in GENERATION_FIELDS if not all_null(meta, f"generation.{name}")]
        if not wanted:
            return empty
        read = pl.scan_parquet(path).select(pl.col("generation").struct.field(*wanted)).collect()
        return [read[name].cast(dtype, strict=False).alias(name) if name in wanted else blank
                for (name, dtype), blank in zip(GENERATION_FIELDS.items(), empty)]
    except Exception:  # an old or odd file: none of them (the schema check reports real problems)
        return empty


def all_null(meta: pq.FileMetaData, path: str) -> bool:
    """The column at `path` (its first leaf, for a list) is null in every row group by the file's statistics;
    an absent column counts as null."""
    leaf = next((i for i in range(meta.num_columns) if (meta.row_group(0).column(i).path_in_schema + ".").startswith(path + ".")),
                None) if meta.num_row_groups else None
    if leaf is None:
        return True
    chunks = [meta.row_group(g).column(leaf) for g in range(meta.num_row_groups)]
    return all(c.statistics is not None and c.statistics.has_null_count and c.statistics.null_count == c.num_values for c in chunks)


def rows_frame(batch: Batch, batch_dir: Path) -> Any:
    """Every column of the batch's rows as a pandas frame, for the user's GX suites (GX has no Polars engine).
    A batch whose texts had to be repaired hands over the gate's own (repaired) columns instead."""
    if batch.invalid_utf8:
        return batch.frame.to_pandas()
    frames = [pl.read_parquet(path) for path in batch.files]
    return (pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]).to_pandas()


def _read_repairing(path: Path, columns: list[str]) -> tuple[pl.DataFrame, int]:
    """Read a file whose strings are not all valid UTF-8 (e.g. lone surrogates): bad texts are decoded with
    U+FFFD replacements. The error path only; returns the frame and the number of rows repaired."""
    table = pq.read_table(path, columns=columns)
    bad_rows = np.zeros(table.num_rows, dtype=bool)
    for name in TEXT:
        if name not in table.column_names or not pa.types.is_string(table.schema.field(name).type):
            continue
        try:
            table.column(name).validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        raw = table.column(name).cast(pa.binary()).to_pylist()
        fixed = []
        for i, value in enumerate(raw):
            try:
                fixed.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                fixed.append(value.decode("utf-8", "replace"))
                bad_rows[i] = True
        table = table.set_column(table.column_names.index(name), name, pa.array(fixed, pa.string()))
    try:
        frame = pl.from_arrow(table)
    except Exception as exc:  # still unreadable: another column holds bad bytes
        raise InputError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:120]})") from None
    assert isinstance(frame, pl.DataFrame)
    return frame, int(bad_rows.sum())


def _coerce(frame: pl.DataFrame, wanted: list[str]) -> pl.DataFrame:
    """Missing columns become null, mistyped ones are cast (or nulled): the schema check reports them."""
    columns = []
    for name in wanted:
        dtype = POLARS_SCHEMA[name]
        if name not in frame.columns:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
        elif frame.schema[name] == dtype:
            columns.append(pl.col(name))
        elif isinstance(dtype, pl.Struct) and isinstance(frame.schema[name], pl.Struct):
            try:  # a struct written before a field existed gains it as null
                expr = upcast(pl.col(name), frame.schema[name], dtype).alias(name)
                frame.head(1).select(expr)
                columns.append(expr)
            except Exception:
                columns.append(pl.lit(None, dtype=dtype).alias(name))
        else:
            try:
                frame.select(pl.col(name).cast(dtype, strict=False))
                columns.append(pl.col(name).cast(dtype, strict=False))
            except Exception:  # an uncastable column (e.g. a struct for a string): treat as absent
                columns.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(columns)


def expected_shares(config: Config, per_domain: dict[str, dict[str, int]]) -> dict[str, float]:
    """Each source's expected share of the whole batch: blend.ratios, or, where blend.domain_ratios give some
    domains their own, every domain's ratios weighted by its rows (a 0.9-human medicine pulls the whole up)."""
    total = sum(n for counts in per_domain.values() for n in counts.values())
    if not config.blend.domain_ratios or not total:
        return {s: 0.0 for s in SOURCES} | dict(config.blend.ratios)
    return {s: sum(sum(c.values()) * config.blend.ratios_for(d).get(s, 0.0) for d, c in per_domain.items()) / total
            for s in SOURCES}


def _share_deviation(counts: dict[str, int], ratios: dict[str, float]) -> tuple[float, dict[str, float]]:
    total = sum(counts.values())
    shares = {s: (counts.get(s, 0) / total if total else 0.0) for s in sorted(set(ratios) | set(counts))}
    deviation = max(abs(shares[s] - ratios.get(s, 0.0)) for s in shares) if shares else 0.0
    return deviation, shares


def measure(config: Config, batch: Batch, human_agreement: float | None, judge_human: float | None,
            active: set[str] | None = None) -> list[Measure]:
    """prefmix's row and content checks for one batch, in report order (checks not in `active` are skipped;
    the prompt-overlap checks are validators/overlap.py's)."""
    core = _core(config, batch, human_agreement, judge_human)
    gate, df, keep = config.gate, batch.frame, config.gate.samples
    wanted = (lambda name: active is None or name in active)
    extra = [
        content.text_integrity(df, batch.invalid_utf8, keep) if wanted("text_integrity") else None,
        content.truncated_share(df, gate, keep) if wanted("truncated_share") else None,
        content.repetition(df, gate, keep) if wanted("repetition") else None,
        content.echo(df, gate, keep) if wanted("echo") else None,
        content.refusal_share(df, gate, keep) if wanted("refusal_share") else None,
        content.length_bias(df, gate) if wanted("length_bias") else None,
    ]
    return [m for m in core if wanted(m.name)] + [m for m in extra if m is not None]


def _core(config: Config, batch: Batch, human_agreement: float | None, judge_human: float | None) -> list[Measure]:
    """The checks on shape, scores, composition, splits, agreement and PII."""
    gate = config.gate
    df = batch.frame
    keep = gate.samples
    rows = df.height
    text = [pl.col(c) for c in TEXT]
    lengths = [pl.lit(textbytes.chars(df, c)) for c in TEXT]
    score_bad = [
        (pl.col(c).is_not_null() & (pl.col(c).is_nan() | (pl.col(c) < gate.score_min) | (pl.col(c) > gate.score_max)))
        for c in ("chosen_score", "rejected_score")
    ]
    synthetic = pl.col("source") == "synthetic"
    margin = pl.col("chosen_score") - pl.col("rejected_score")
    # The margin rule is for single-turn judge scores; agent rows carry outcome rewards (0..1), checked by their
    # own rules. An integer tie the judge broke by expected scores (generation.tie_break) has a margin of its
    # own: the expected gap, held to generation.expected_margin as when the pair was made.
    judged = synthetic & (pl.col("kind").is_null() | (pl.col("kind") == "single_turn"))
    gap = pl.col("chosen_expected") - pl.col("rejected_expected")
    tie_broken = ((margin == 0) & (gap > 0) & (gap >= config.generation.expected_margin)).fill_null(False) \
        if config.generation.tie_break == "expected" else pl.lit(False)
    stats = df.select(
        ids_null=pl.col("record_id").null_count(),
        out_of_bounds=pl.any_horizontal([((n < gate.min_chars) | (n > gate.max_chars)).fill_null(False) for n in lengths]).sum(),
        longest=pl.max_horizontal([n.max() for n in lengths]),
        shortest=pl.min_horizontal([n.min() for n in lengths]),
        bad_scores=pl.any_horizontal(score_bad).sum(),
        synthetic_rows=synthetic.fill_null(False).sum(),
        low_margin=(judged & (margin.is_null() | margin.is_nan() | ((margin < gate.min_margin) & ~tie_broken))).fill_null(False).sum(),
        tie_broken=(judged & tie_broken).fill_null(False).sum(),
        min_margin=pl.when(judged).then(margin).min(),
        human_rows=(pl.col("source") == "human").fill_null(False).sum(),
        bad_source=(~pl.col("source").is_in(SOURCES)).fill_null(True).sum(),
        bad_split=(~pl.col("split").is_in(SPLITS)).fill_null(True).sum(),
    ).row(0, named=True)
    blank = _blank_rows(df)
    stats["empty"] = len(blank)
    stats["ids_unique"] = _distinct_ids(df)

    schema_problems = list(batch.schema_problems)
    if stats["bad_source"]:
        schema_problems.append(f"column source: {stats['bad_source']} rows not in {list(SOURCES)}")
    if stats["bad_split"]:
        schema_problems.append(f"column split: {stats['bad_split']} rows not in {list(SPLITS)}")

    # Source shares, overall and per domain, from one group-by.
    comp = df.group_by("domain", "source").len()
    overall: dict[str, int] = {}
    per_domain: dict[str, dict[str, int]] = {}
    for domain, source, n in comp.iter_rows():
        overall[str(source)] = overall.get(str(source), 0) + n
        per_domain.setdefault(str(domain), {})[str(source)] = n
    ratios = expected_shares(config, per_domain)
    overall_dev, overall_shares = _share_deviation(overall, ratios)
    if config.blend.domain_ratios and overall:
        # each domain's quota is rounded to whole rows on its own: up to one row per domain adds up in the whole
        overall_dev = max(0.0, overall_dev - len(per_domain) / sum(overall.values()))
    domain_devs: dict[str, float] = {}
    domain_shares: dict[str, dict[str, float]] = {}
    for domain, counts in sorted(per_domain.items()):
        dev, shares = _share_deviation(counts, config.blend.ratios_for(domain))
        # A quota is a whole number of rows: allow one row's worth of rounding on top of the tolerance.
        domain_devs[domain] = max(0.0, dev - 1.0 / sum(counts.values()))
        domain_shares[domain] = shares
    worst = max(domain_devs, key=domain_devs.__getitem__) if domain_devs else None
    missing_domains = [d for d in config.domains if d not in per_domain]

    stats["same"] = _same_pairs(df)
    pii_rows = _pii_rows(df)
    stats["pii_rows"] = pii_rows.len()
    leaked = _leaked_prompts(df)

    agreement, agreement_note = _agreement(df, stats["human_rows"], human_agreement, with_annotation="annotation" in df.columns)
    agreement_value, agreement_note = _required(agreement, agreement_note, stats["human_rows"] > 0, gate.min_agreement, "agreement")
    judge_value, judge_note = _required(judge_human, "", stats["synthetic_rows"] > 0, gate.min_judge_human, "judge-human calibration")

    length_mask = pl.any_horizontal([((n < gate.min_chars) | (n > gate.max_chars)).fill_null(False) for n in lengths])
    same_mask = (pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars()).fill_null(False)
    samples = {
        "non_empty_text": rows_samples(df, blank, TEXT, keep) if stats["empty"] else [],
        "chosen_differs": flagged_samples(df, same_mask, ("chosen",), keep) if stats["same"] else [],
        "text_length": flagged_samples(df, length_mask, TEXT, keep) if stats["out_of_bounds"] else [],
        "score_range": [
            {**r} for r in df.filter(pl.any_horizontal(score_bad)).head(keep)
            .select("record_id", "source", "domain", "chosen_score", "rejected_score").iter_rows(named=True)
        ] if stats["bad_scores"] else [],
        "pii_share": _pii_samples(df, pii_rows, keep) if stats["pii_rows"] else [],
    }
    duplicates = rows - stats["ids_unique"]  # null ids count as duplicates too
    pii_share = stats["pii_rows"] / rows if rows else 0.0
    return [
        Measure("row_count", rows, min_value=gate.min_rows, observed=rows, description="batch has at least gate.min_rows rows"),
        Measure("schema", len(schema_problems), max_value=0, observed=schema_problems[:20],
                description="canonical columns present with canonical types; source and split values known"),
        Measure("non_empty_text", stats["empty"], max_value=0, observed=stats["empty"], samples=samples["non_empty_text"],
                description="prompt, chosen and rejected are non-null and not blank"),
        Measure("chosen_differs", stats["same"], max_value=0, observed=stats["same"], description="chosen != rejected",
                samples=samples["chosen_differs"]),
        Measure("unique_record_id", duplicates, max_value=0, observed={"duplicates_or_null": duplicates},
                description="record_id is present and unique"),
        Measure("text_length", stats["out_of_bounds"], max_value=0,
                observed={"rows_out_of_bounds": stats["out_of_bounds"], "shortest": stats["shortest"], "longest": stats["longest"]},
                note=f"lengths in characters must be within [{gate.min_chars}, {gate.max_chars}]", samples=samples["text_length"],
                description="prompt/chosen/rejected lengths within gate.min_chars..max_chars"),
        Measure("score_range", stats["bad_scores"], max_value=0, observed=stats["bad_scores"],
                note=f"scores must be within [{gate.score_min:g}, {gate.score_max:g}]", samples=samples["score_range"],
                description="chosen/rejected scores within gate.score_min..score_max"),
        Measure("synthetic_margin", stats["low_margin"], max_value=0,
                observed={"rows_below": stats["low_margin"], "min_margin": stats["min_margin"], "ties_broken_by_expected": stats["tie_broken"]},
                note=f"single-turn synthetic chosen_score - rejected_score must be >= {gate.min_margin:g}, or an integer tie "
                f"broken by expected scores at least {config.generation.expected_margin:g} apart",
                description="single-turn synthetic judge margin >= gate.min_margin (or an expected-score tie-break)"),
        Measure("source_share", overall_dev, max_value=gate.share_tolerance, observed=overall_shares,
                note=f"expected {ratios}",
                description="each source's share within tolerance of blend.ratios (domain_ratios weighted by domain rows)"),
        Measure("domain_source_share", max(domain_devs.values(), default=0.0), max_value=gate.share_tolerance,
                observed=domain_shares, note=f"worst domain: {worst}" if worst and domain_devs[worst] > 0 else "",
                description="each source's share within tolerance of its domain's ratio (one row of rounding allowed)"),
        Measure("domains_present", len(missing_domains), max_value=0, observed={"missing": missing_domains},
                description="every configured domain has rows"),
        Measure("split_disjoint", leaked, max_value=0, observed={"prompts_in_both_splits": leaked},
                description="no prompt appears in both train and eval"),
        Measure("human_agreement", agreement_value, min_value=gate.min_agreement, observed=agreement, note=agreement_note,
                description="human annotator agreement >= gate.min_agreement"),
        Measure("judge_human", judge_value, min_value=gate.min_judge_human, observed=judge_human, note=judge_note,
                description="judge-vs-human calibration >= gate.min_judge_human"),
        Measure("pii_share", pii_share, max_value=gate.max_pii_share,
                observed={"rows": stats["pii_rows"], "share": round(pii_share, 6)}, samples=samples["pii_share"],
                description="share of rows with e-mail, phone or national-id patterns <= gate.max_pii_share"),
    ]


def _pii_rows(df: pl.DataFrame) -> pl.Series:
    """Row numbers (sorted, unique) where any text matches PII_PATTERN; the full pattern only runs on
    prefiltered candidates."""
    hits = []
    for column in TEXT:
        texts = df.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), pl.col(column).alias("t"))
        candidates = texts.filter(pl.col("t").str.contains(PII_PREFILTER))
        hits.append(candidates.filter(pl.col("t").str.contains(PII_PATTERN))["row"])
    return pl.concat(hits).unique().sort()


def _pii_samples(df: pl.DataFrame, rows: pl.Series, keep: int) -> list[dict[str, Any]]:
    """A few rows with a PII match (found by _pii_rows), the match shown in the excerpt."""
    picked = df.select("record_id", "source", "domain", *TEXT)[rows.head(keep).to_list()]
    return flagged_samples(picked, pl.lit(True), TEXT, keep, find=PII_PATTERN.replace("(?-u:\\b)", "\\b"))


# Unicode White_Space (Rust's \\s and str::trim): the first byte of each in UTF-8. A text that is blank
# (`^\\s*$`) is empty or starts with one of these.
_WHITESPACE_LEAD = textbytes.byte_set((0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xC2, 0xE1, 0xE2, 0xE3))
_EDGE = textbytes.byte_set((0x20, 0x0A, 0x09, 0x0D))  # what _edge_space looks for at either end (one byte each)


def _blank_rows(df: pl.DataFrame) -> np.ndarray:
    """Rows (ascending) whose prompt, chosen or rejected is null or blank (`^\\s*$`); the regex only runs on
    texts that are empty or start with a whitespace byte (the first byte comes from the Arrow view)."""
    found = []
    for column in TEXT:
        series = df[column]
        v = textbytes.column(df, column)
        if v is None:
            hit = series.is_null() | series.str.contains(r"^\s*$")
            found.append(np.flatnonzero(hit.fill_null(True).to_numpy()))
            continue
        first, _ = v.edges()
        found.append(np.flatnonzero(first < 0))  # null or empty
        maybe = np.flatnonzero(textbytes.in_set(first, _WHITESPACE_LEAD))
        if maybe.size:
            found.append(maybe[series.gather(maybe).str.contains(r"^\s*$").fill_null(False).to_numpy()])
    return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


def _distinct_ids(df: pl.DataFrame) -> int:
    """Distinct non-null record ids: counted on 64-bit hashes (distinct hashes are distinct ids); only a
    hash collision, or a true duplicate, sends it to the exact count over the strings."""
    ids = df["record_id"].drop_nulls()
    if ids.hash(0x1D5).n_unique() == ids.len():
        return ids.len()
    return ids.n_unique()


def _edge_space(column: str) -> pl.Expr:
    """Starts or ends with whitespace: O(1) per row, unlike stripping every text."""
    col = pl.col(column)
    return pl.any_horizontal([e for ch in (" ", "\n", "\t", "\r") for e in (col.str.starts_with(ch), col.str.ends_with(ch))])


def _edge_rows(df: pl.DataFrame, column: str) -> np.ndarray | None:
    """Bool per row: the text starts or ends with one of _EDGE (as _edge_space), from the Arrow views;
    None without them."""
    v = textbytes.column(df, column)
    if v is None:
        return None
    first, last = v.edges()
    return textbytes.in_set(first, _EDGE) | textbytes.in_set(last, _EDGE)


def _same_pairs(df: pl.DataFrame) -> int:
    """Rows with chosen == rejected once surrounding whitespace is trimmed."""
    pair = df.select("chosen", "rejected")
    exact = pair.select((pl.col("chosen") == pl.col("rejected")).fill_null(False).sum()).item()
    edges = [_edge_rows(df, c) for c in ("chosen", "rejected")]
    if edges[0] is None or edges[1] is None:
        padded = pair.filter((pl.col("chosen") != pl.col("rejected")) & (_edge_space("chosen") | _edge_space("rejected")))
    else:
        maybe = np.flatnonzero(edges[0] | edges[1])
        padded = pair[maybe].filter(pl.col("chosen") != pl.col("rejected")) if maybe.size else pair.head(0)
    trimmed = padded.select((pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars()).sum()).item()
    return int(exact) + int(trimmed or 0)


def _spacing_bytes(x: np.ndarray) -> np.ndarray | None:
    """Where one of _SPACING may start (textbytes flag): a double space, newline, tab, carriage return, or the
    lead byte of U+00A0 (0xC2) or U+3000 (0xE3)."""
    if x.size == 0:
        return None
    out = np.zeros(x.shape, dtype=bool)
    space = x == 0x20
    out[..., :-1] = space[..., :-1] & space[..., 1:]
    if x.min() < 0x20:
        out |= x == 0x0A
        out |= x == 0x09
        out |= x == 0x0D
    if x.max() >= 0xC2:
        out |= x == 0xC2
        out |= x == 0xE3
    return out


def _leaked_prompts(df: pl.DataFrame) -> int:
    """Distinct prompts present in both train and eval, compared whitespace-normalized as prompt_key does.

    Only prompts that contain collapsible whitespace are rewritten; the regex
    replace over every prompt would cost more than the rest of the gate. Prompts
    are matched on 64-bit hashes of their keys first; the strings of the few that
    match are then compared exactly.
    """
    col = pl.col("prompt")
    spaced = pl.any_horizontal([col.str.contains(s, literal=True) for s in _SPACING]) | _edge_space("prompt")
    normal = col.str.replace_all(r"\s+", " ").str.strip_chars()
    edges = _edge_rows(df, "prompt")
    maybe = textbytes.candidates(df, "prompt", _spacing_bytes, width=2)
    frame = df.select("prompt", "split").with_row_index("_row")
    if edges is None or maybe is None:
        rows = frame.filter(spaced.fill_null(False))["_row"].to_numpy()
    else:
        maybe = np.union1d(maybe, np.flatnonzero(edges))
        rows = maybe[frame[maybe].select(spaced.fill_null(False)).to_series().to_numpy()] if maybe.size else maybe
    key = frame.select(pl.col("prompt").hash(0x5B1)).to_series()
    if rows.size:
        key = key.scatter(rows, frame[rows].select(normal.hash(0x5B1)).to_series())
    keyed = frame.select("split", "_row").with_columns(key=key)
    eval_keys = keyed.filter(pl.col("split") == "eval")["key"]
    if eval_keys.len() == 0:
        return 0
    train_hit = keyed.filter((pl.col("split") == "train") & pl.col("key").is_in(eval_keys.implode()))
    if train_hit.height == 0:
        return 0
    # The exact comparison, on the rows whose key hashes meet: a train row's key equal to an eval row's has
    # the same hash, so it is among them.
    eval_hit = keyed.filter((pl.col("split") == "eval") & pl.col("key").is_in(train_hit["key"].implode()))
    picked = np.union1d(train_hit["_row"].to_numpy(), eval_hit["_row"].to_numpy())
    spaced_rows = np.isin(picked, rows)
    sub = frame[picked].with_columns(_spaced=pl.Series(spaced_rows))
    keyed = sub.select(pl.when(pl.col("_spaced")).then(normal).otherwise(col).alias("prompt"), "split")
    eval_keys = keyed.filter(pl.col("split") == "eval").select("prompt").unique()
    train = keyed.filter(pl.col("split") == "train").select("prompt")
    return train.join(eval_keys, on="prompt", how="semi").unique().height


def _agreement(df: pl.DataFrame, human_rows: int, given: float | None, with_annotation: bool) -> tuple[float | None, str]:
    """The facts' figure if given, else the mean per-row agreement of human rows."""
    if given is not None:
        return given, "from the annotations room"
    if not human_rows or not with_annotation:
        return None, ""
    agreement = pl.col("annotation").struct.field("agreement")
    mean = df.select(agreement.filter(pl.col("source") == "human").mean()).item()
    return (None, "") if mean is None else (float(mean), "mean agreement of human rows")


def _required(value: float | None, note: str, applies: bool, threshold: float, what: str) -> tuple[float | None, str]:
    """Unknown figures: not applicable without the rows it is about; a failure (as 0) when a threshold is set."""
    if value is not None:
        return value, note
    if not applies:
        return None, "not applicable: no rows it is about"
    if threshold > 0:
        return 0.0, f"no {what} figure available (counted as 0)"
    return None, f"no {what} figure available and no threshold set"
