from __future__ import annotations

from pathlib import Path

import pytest

from prefmix.config import Config
from prefmix.store import Store
from tests.support.records import make_records


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.ensure()
    return s


@pytest.fixture
def config(store: Store) -> Config:
    return Config(store=str(store.root))


@pytest.fixture
def records(tmp_path: Path) -> dict[str, Path]:
    """Human and synthetic record files in the ratio of the default config (0.7 / 0.3)."""
    base = tmp_path / "inputs"
    return {
        "human1": make_records(base / "human1.parquet", "human", 14, "vendor-a"),
        "human2": make_records(base / "human2.parquet", "human", 14, "vendor-b"),
        "syn1": make_records(base / "syn1.parquet", "synthetic", 6, "run-1", run_id="run-1"),
        "syn2": make_records(base / "syn2.parquet", "synthetic", 6, "run-2", run_id="run-2"),
    }
