"""Read the configured prompt Parquet files into one validated frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from prefmix.config import Config, PromptSet
from prefmix.errors import ConfigError, InputError
from prefmix.store import sha256_file

COLUMNS = ("prompt", "domain", "origin_uri", "origin_sha256", "origin_row")
PROMPT_SCHEMA = pl.Schema(
    {"prompt": pl.String, "domain": pl.String, "origin_uri": pl.String, "origin_sha256": pl.String, "origin_row": pl.Int64}
)


def _short(value: object, limit: int = 60) -> str:
    """A value for an error line: repr, cut to `limit` characters (a huge cell must not flood the terminal)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def _first_bad_row(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    hits = frame.with_row_index("_row").filter(bad)["_row"]
    return int(hits[0]) if len(hits) else None


def load_prompt_set(prompt_set: PromptSet, domains: list[str]) -> pl.DataFrame:
    """One prompt file -> canonical prompt rows with their origin; bad rows raise InputError."""
    path = Path(prompt_set.path)
    if not path.is_file():
        raise InputError(f"{path}: prompt file not found")
    try:
        raw = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a non-Parquet file
        raise InputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    names = {"prompt": prompt_set.columns.get("prompt", "prompt"), "domain": prompt_set.columns.get("domain", "domain")}
    for canonical, column in names.items():
        if column not in raw.columns:
            raise InputError(f"{path}: missing column {column!r} (for {canonical}); columns are {raw.columns}")
        if raw.schema[column] not in (pl.String, pl.Categorical, pl.Null):
            raise InputError(f"{path}: column {column!r} should hold strings, found {raw.schema[column]}")
    frame = raw.select(pl.col(names["prompt"]).cast(pl.String).alias("prompt"), pl.col(names["domain"]).cast(pl.String).alias("domain"))
    bad = _first_bad_row(frame, pl.col("prompt").is_null() | (pl.col("prompt").str.strip_chars() == ""))
    if bad is not None:
        raise InputError(f"{path}: row {bad}: column {names['prompt']!r} is empty; expected a prompt text")
    bad = _first_bad_row(frame, pl.col("domain").is_null() | ~pl.col("domain").is_in(domains))
    if bad is not None:
        raise InputError(
            f"{path}: row {bad}: column {names['domain']!r} is {_short(frame['domain'][bad])}; expected one of {domains}"
        )
    return frame.with_columns(
        pl.lit(str(path)).alias("origin_uri"),
        pl.lit(sha256_file(path)).alias("origin_sha256"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("origin_row"),
    ).select(COLUMNS)


def load_prompts(config: Config) -> pl.DataFrame:
    """All prompt files of the config, in config order; columns prompt, domain, origin_uri, origin_sha256, origin_row."""
    if not config.prompts:
        raise ConfigError("prompts: no prompt files configured; expected a list of {path: ...}")
    frames = [load_prompt_set(ps, config.domains) for ps in config.prompts]
    prompts = pl.concat(frames, how="vertical").cast(dict(PROMPT_SCHEMA))
    if prompts.height == 0:
        raise InputError(f"{', '.join(ps.path for ps in config.prompts)}: no prompt rows; expected at least one")
    return prompts
