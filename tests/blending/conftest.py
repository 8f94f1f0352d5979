"""Fixtures for the blending tests (builders are in tests/blending/blend_helpers.py and tests/support/records.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from tests.support.records import write_records


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, frame_or_frames) -> path of a canonical Parquet file under tmp_path/inputs."""

    def _write(name: str, *frames: pl.DataFrame) -> Path:
        return write_records(tmp_path / "inputs" / f"{name}.parquet", *frames)

    return _write
