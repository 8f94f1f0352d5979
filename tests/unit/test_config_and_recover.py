"""Small guarantees of the shared contract: config errors name the key; recover removes half-written files."""

from __future__ import annotations

import pytest

from prefmix.lineage.publish import recover
from prefmix.config import parse
from prefmix.errors import ConfigError
from prefmix.store import Store


def test_duplicate_teacher_names_are_a_config_error():
    data = {"teachers": [{"name": "t", "model": "m", "endpoints": ["http://127.0.0.1:1/v1"]}] * 2}
    with pytest.raises(ConfigError, match="duplicate teacher name 't'"):
        parse(data, "c.yaml")


def test_recover_removes_tmp_files_of_killed_runs_and_keeps_finished_ones(tmp_path):
    chunks = tmp_path / "runs" / "r1" / "chunks"
    chunks.mkdir(parents=True)
    (chunks / ".chunk-00001.parquet.x1.tmp").write_bytes(b"half")
    (chunks / "chunk-00000.parquet").write_bytes(b"done")
    report = recover(Store.at(tmp_path))
    assert report.removed_tmp == ["runs/r1/chunks/.chunk-00001.parquet.x1.tmp"]
    assert sorted(p.name for p in chunks.iterdir()) == ["chunk-00000.parquet"]
