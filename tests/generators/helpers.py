"""Small builders shared by the generators tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import yaml

from prefmix.config import Config, load
from tests.support.records import DOMAINS


def write_prompts(path: Path, n: int, *, prefix: str = "Question") -> Path:
    pl.DataFrame(
        {"prompt": [f"{prefix} {i}: how does item {i * 37 % 101} work?" for i in range(n)],
         "domain": [DOMAINS[i % 4] for i in range(n)]}
    ).write_parquet(path)
    return path


def write_config(tmp: Path, url: str, n_prompts: int = 12, model: str = "tiny-teacher", **generation: Any) -> Path:
    """A config file with a prompt file of n_prompts; small tokens so tests stay quick on 2 cores. The tiny
    teacher never stops on its own (random weights), so its answers are kept although cut at max_tokens."""
    write_prompts(tmp / "prompts.parquet", n_prompts)
    gen = {"chunk_size": 8, "sampling": {"max_tokens": 16}, "judge_max_tokens": 32, "truncated": "keep", **generation}
    data = {
        "store": "store",
        "prompts": [{"path": "prompts.parquet"}],
        "teachers": [{"name": "tiny", "model": model, "endpoints": [url], "max_in_flight": 32, "timeout_s": 30}],
        "generation": gen,
    }
    path = tmp / "prefmix.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def config(tmp: Path, url: str, n_prompts: int = 12, **generation: Any) -> Config:
    return load(write_config(tmp, url, n_prompts, **generation))
