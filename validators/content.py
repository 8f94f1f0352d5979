"""Content checks: what the text says, not only its shape.

Each function takes the batch frame (and the gate config) and returns one
`Measure`, computed with Polars over the whole batch. Expensive tests run on
candidate rows only, narrowed by a cheap necessary condition first (lengths
from the Arrow offsets, one literal search), so a clean 1M-row batch costs
little.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from prefmix.config import Gate
from prefmix.errors import ConfigError
from prefmix.validators import textbytes
from prefmix.validators.measure import Measure, flagged_samples, rows_samples

TEXT = ("prompt", "chosen", "rejected")

# Control characters other than newline and tab (a carriage return only as part of CRLF), C1 controls,
# and U+FFFD (what a decoder writes for bytes that were not text: a random-weight model's output, a
# mis-decoded vendor file). Invalid UTF-8 such as lone surrogates is repaired to U+FFFD when the batch is
# read (validators/metrics.py counts those rows), so this one pattern sees them too.
INTEGRITY_PATTERN = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\x{80}-\x{9F}\x{FFFD}]|\r(?:[^\n]|\z)"

# The same set for Python's re (sample excerpts are centred on the first hit).
PY_INTEGRITY = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]|\r(?!\n)"

# Built-in refusal phrases (English; lowercase, matched case-insensitively in the first head_chars).
REFUSALS = (
    r"\bi(?:'m| am) (?:sorry|afraid|unable|not able)\b",
    r"\bi (?:can(?:'t|not)|won't|will not|must decline|do not feel comfortable)\b",
    r"\bas an ai\b",
    r"\bi'm not (?:able|comfortable|allowed)\b",
    r"\b(?:cannot|can't) (?:help|assist|provide|comply) with\b",
    r"\bi (?:apologi[sz]e|must refuse)\b",
    r"\bagainst (?:my|our) (?:guidelines|policy|policies)\b",
)


def refusal_pattern(gate: Gate) -> str | None:
    """One case-insensitive alternation of the built-in phrases (unless turned off) and the user's patterns."""
    parts = [*(REFUSALS if gate.refusal.builtin else ()), *gate.refusal.patterns]
    return "(?i)" + "|".join(f"(?:{p})" for p in parts) if parts else None


def _integrity_bytes(x: np.ndarray) -> np.ndarray | None:
    """A byte every match of INTEGRITY_PATTERN holds (textbytes flag): a control byte other than tab and
    newline (a carriage return included), DEL, or the lead byte of U+0080-U+009F (0xC2) or of U+FFFD (0xEF)."""
    if x.size == 0:
        return None
    out = None
    if x.min() < 0x20:
        out = np.less(np.subtract(x, 0x0B, dtype=np.uint8), 0x20 - 0x0B)  # 0x0B-0x1F
        out |= x < 0x09
    if x.max() >= 0x7F:
        high = x == 0x7F
        high |= x == 0xC2
        high |= x == 0xEF
        out = high if out is None else out | high
    return out


def text_integrity(df: pl.DataFrame, invalid_utf8: int, keep: int) -> Measure:
    """Rows with a control character, U+FFFD or invalid UTF-8 in prompt, chosen or rejected. The regex runs
    on the rows a byte scan lets through (textbytes): clean text costs a few vector compares per byte."""
    hits = {c: textbytes.matching(df, c, lambda t: t.str.contains(INTEGRITY_PATTERN), _integrity_bytes) for c in TEXT}
    per_column = {c: len(h) for c, h in hits.items()}
    bad = np.unique(np.concatenate(list(hits.values())))
    rows = len(bad)
    samples = rows_samples(df, bad, TEXT, keep, find=PY_INTEGRITY) if rows else []
    return Measure(
        "text_integrity", rows, max_value=0,
        observed={"rows": rows, **{f"{c}_rows": int(n) for c, n in per_column.items()}, "invalid_utf8_rows": invalid_utf8},
        samples=samples,
        description="no control characters (other than newline, tab, CRLF), U+FFFD or invalid UTF-8 in the texts",
    )


def truncated_share(df: pl.DataFrame, gate: Gate, keep: int) -> Measure:
    """Share of rows with known finish reasons whose chosen candidate stopped at max_tokens ("length")."""
    reasons = pl.col("finish_reasons")  # generation.finish_reasons, read by validators/metrics.py
    chosen, rejected = reasons.list.get(0, null_on_oob=True), reasons.list.get(1, null_on_oob=True)
    stats = df.select(
        known=chosen.is_not_null().sum(),
        truncated=(chosen == "length").fill_null(False).sum(),
        rejected_truncated=(rejected == "length").fill_null(False).sum(),
    ).row(0, named=True)
    known = int(stats["known"])
    share = stats["truncated"] / known if known else None
    samples = flagged_samples(df, (chosen == "length").fill_null(False), ("chosen",), keep) if stats["truncated"] else []
    return Measure(
        "truncated_share", share, max_value=gate.max_truncated_share,
        observed={"rows_with_finish_reasons": known, "chosen_truncated": int(stats["truncated"]),
                  "rejected_truncated": int(stats["rejected_truncated"])},
        note="" if known else "not applicable: no row records finish reasons",
        samples=samples,
        description="share of rows whose chosen answer was cut at max_tokens <= gate.max_truncated_share",
    )


def repetition(df: pl.DataFrame, gate: Gate, keep: int) -> Measure:
    """Share of rows whose chosen text repeats itself: seq-rep-n (1 - distinct/total word n-grams) > max_rep.

    seq-rep-n needs every text split into words, which costs more than the rest of the gate; so candidates
    come first: in a text with more than half of its n-grams repeated the repetition covers most of its
    second half (a loop runs to the end of a generation), so the 24 characters at 2/3 of its length occur
    earlier in it too. Only candidates are split and measured exactly.
    """
    cfg = gate.repetition
    chosen = pl.col("chosen")
    size = pl.lit(textbytes.chars(df, "chosen"))
    at = (size * 2) // 3
    window = chosen.str.slice(at, 24)
    candidate = (size >= 48) & chosen.str.head(at.cast(pl.Int64)).str.contains(window, literal=True)
    rows = df.height
    picked = df.select("chosen").with_row_index("_row").filter(candidate.fill_null(False))
    rep = seq_rep(picked["chosen"], cfg.ngram)
    flagged = picked.filter(rep > cfg.max_rep).with_columns(seq_rep=rep.filter(rep > cfg.max_rep))
    count = flagged.height
    share = count / rows if rows else 0.0
    samples = []
    if count:
        mask = pl.int_range(pl.len(), dtype=pl.UInt32).is_in(flagged["_row"].cast(pl.UInt32).implode())
        samples = flagged_samples(df, mask, ("chosen",), keep)
    return Measure(
        "repetition", share, max_value=cfg.max_share,
        observed={"rows": count, "share": round(share, 6), "candidates": picked.height,
                  "worst_seq_rep": round(float(flagged["seq_rep"].max()), 4) if count else None},  # type: ignore[arg-type]
        note=f"a chosen text is repetitive when seq-rep-{cfg.ngram} > {cfg.max_rep:g}",
        samples=samples,
        description="share of rows whose chosen text loops (repeated word n-grams) <= gate.repetition.max_share",
    )


def seq_rep(texts: pl.Series, n: int) -> pl.Series:
    """1 - distinct/total word n-grams per text (0 for texts shorter than 2n words)."""
    if texts.len() == 0:
        return pl.Series("seq_rep", [], dtype=pl.Float64)
    words = texts.str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase().str.split(" ")
    frame = pl.DataFrame({"w": words}).with_row_index("doc").explode("w").with_columns(h=pl.col("w").hash(11))
    grams = frame.with_columns(
        g=pl.concat_list([pl.col("h").shift(-k).over("doc") for k in range(n)]).hash(13),
        last=pl.int_range(pl.len()).over("doc") > pl.len().over("doc") - n,
    ).filter(~pl.col("last"))
    per = grams.group_by("doc").agg(total=pl.len(), distinct=pl.col("g").n_unique())
    full = pl.DataFrame({"doc": pl.int_range(texts.len(), eager=True, dtype=pl.UInt32)}).join(
        per.with_columns(pl.col("doc").cast(pl.UInt32)), on="doc", how="left"
    )
    rep = pl.when(pl.col("total") >= n + 1).then(1.0 - pl.col("distinct") / pl.col("total")).otherwise(0.0)
    return full.select(rep.fill_null(0.0).alias("seq_rep"))["seq_rep"]


def echo(df: pl.DataFrame, gate: Gate, keep: int) -> Measure:
    """Share of rows whose chosen text contains its whole prompt (trimmed), for prompts of min_prompt_chars+."""
    cfg = gate.echo
    prompt, chosen = pl.col("prompt"), pl.col("chosen")
    # Lengths come from the Arrow offsets: only rows where the prompt could fit are searched, first for the
    # prompt's first 32 characters (a short needle is cheap to look for), then for the whole prompt.
    fits = (prompt.str.len_bytes() >= cfg.min_prompt_chars) & (chosen.str.len_bytes() >= prompt.str.len_bytes())
    candidates = (
        df.select("prompt", "chosen").with_row_index("_row")
        .filter(fits.fill_null(False) & chosen.str.contains(prompt.str.strip_chars_start().str.head(32), literal=True))
    )
    hit = candidates.filter(pl.col("chosen").str.contains(pl.col("prompt").str.strip_chars(), literal=True).fill_null(False))
    count, rows = hit.height, df.height
    share = count / rows if rows else 0.0
    samples = []
    if count:
        mask = pl.int_range(pl.len(), dtype=pl.UInt32).is_in(hit["_row"].cast(pl.UInt32).implode())
        samples = flagged_samples(df, mask, ("prompt", "chosen"), keep)
    return Measure(
        "echo", share, max_value=cfg.max_share, observed={"rows": count, "share": round(share, 6)},
        samples=samples,
        description="share of rows whose chosen answer repeats the whole prompt <= gate.echo.max_share",
    )


def refusal_share(df: pl.DataFrame, gate: Gate, keep: int) -> Measure:
    """Share of rows whose chosen text refuses (a refusal pattern in its first head_chars characters)."""
    pattern = refusal_pattern(gate)
    rows = df.height
    if pattern is None or rows == 0:
        return Measure("refusal_share", None, max_value=gate.refusal.max_share, observed=None,
                       note="not applicable: no refusal patterns" if pattern is None else "",
                       description="share of rows whose chosen answer refuses <= gate.refusal.max_share")
    chosen_refuses = pl.col("chosen").str.head(gate.refusal.head_chars).str.contains(pattern).fill_null(False)
    rejected_refuses = pl.col("rejected").str.head(gate.refusal.head_chars).str.contains(pattern).fill_null(False)
    stats = df.select(chosen=chosen_refuses.sum()).row(0, named=True)
    count = int(stats["chosen"])
    over_answer = int(df.filter(chosen_refuses).select((~rejected_refuses).sum()).item()) if count else 0
    share = count / rows
    return Measure(
        "refusal_share", share, max_value=gate.refusal.max_share,
        observed={"rows": count, "share": round(share, 6), "refusal_chosen_over_answer": over_answer},
        samples=flagged_samples(df, chosen_refuses, ("chosen", "rejected"), keep, find=pattern) if count else [],
        description="share of rows whose chosen answer refuses <= gate.refusal.max_share",
    )


def length_bias(df: pl.DataFrame, gate: Gate) -> Measure:
    """Per source, the mean chosen/rejected length ratio, taken as a geometric mean of the rows' ratios (one
    50,000-character answer must not decide it: that is text_length's business); the figure is the worst
    source's ratio or its inverse, so a judge that favours short answers is caught too."""
    lengths = df.select("source", c=pl.lit(textbytes.chars(df, "chosen")), r=pl.lit(textbytes.chars(df, "rejected")))
    per = (
        lengths.filter((pl.col("c") > 0) & (pl.col("r") > 0))
        .group_by("source").agg(mean=(pl.col("c").cast(pl.Float64) / pl.col("r")).log().mean()).sort("source")
    )
    ratios = {str(source): round(math.exp(mean), 4) for source, mean in per.iter_rows() if mean is not None}
    worst = max(ratios, key=lambda s: abs(math.log(ratios[s])), default=None)
    value = None if worst is None else max(ratios[worst], 1 / ratios[worst])
    return Measure(
        "length_bias", value, max_value=gate.length_bias.max_ratio, observed={"chosen_over_rejected": ratios},
        note=f"worst source: {worst}" if worst else "not applicable: no rows",
        description="per source, the mean chosen/rejected length ratio (or its inverse) <= gate.length_bias.max_ratio",
    )


def check_patterns(gate: Gate) -> None:
    """The refusal patterns compile for Polars' regex engine too (Python's re accepts constructs it refuses)."""
    pattern = refusal_pattern(gate)
    if pattern:
        try:
            pl.select(pl.lit("x").str.contains(pattern))
        except pl.exceptions.ComputeError as exc:
            first = " ".join(str(exc).split())[:160]
            raise ConfigError(f"gate.refusal.patterns: not accepted by the gate's regex engine ({first})") from None
