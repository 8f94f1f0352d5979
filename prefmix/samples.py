"""Seeded sample prompts for the demo and tests: realistic questions across domains (vocabulary in sample_prompts.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from prefmix.store import write_parquet
from prefmix.yamlio import read_yaml

# domain -> {"ask": question templates, slot name -> values}
_TOPICS: dict[str, dict[str, list[str]]] = read_yaml(Path(__file__).with_name("sample_prompts.yaml"), "sample prompt vocabulary")


def sample_prompts(n: int, seed: int = 0, domains: list[str] | None = None) -> pl.DataFrame:
    """n distinct prompts spread over the domains (columns: prompt, domain)."""
    rng = np.random.default_rng(seed)
    domains = domains or list(_TOPICS)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n and attempts < n * 50:
        attempts += 1
        domain = domains[len(rows) % len(domains)]
        parts = _TOPICS.get(domain, _TOPICS["general"])
        template = parts["ask"][rng.integers(len(parts["ask"]))]
        fill = {key: values[rng.integers(len(values))] for key, values in parts.items() if key != "ask"}
        text = template.format(**fill)
        if text not in seen:
            seen.add(text)
            rows.append((text, domain))
    return pl.DataFrame(rows, schema={"prompt": pl.String, "domain": pl.String}, orient="row")


def write_prompts(path: str | Path, n: int, seed: int = 0, domains: list[str] | None = None) -> Path:
    frame = sample_prompts(n, seed, domains)
    table = frame.to_arrow().cast(pa.schema([("prompt", pa.string()), ("domain", pa.string())]))
    return write_parquet(table, path)
