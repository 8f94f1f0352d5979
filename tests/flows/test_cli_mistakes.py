"""Mistakes a new user made (issue 13), each one line on stderr with its exit code.

The config and input mistakes (negative --limit, no inputs, an empty source with a ratio, an unknown gate check,
a launch folder that is missing or not a model) are cases of the bad-input corpus (tests/data/bad/cases.yaml,
run by tests/reliability/test_bad_inputs.py, which also checks that no store folder is created). These are the
ones that need more than a config: a taken port, which store wins, and the blend's store lock.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from prefmix.store import Store
from tests.support import REPO
from tests.support.cli import one_line, prefmix
from tests.support.nightly import make_inputs
from tests.support.prefect_server import PrefectServer


def _config(root: Path, teachers: list[dict], **extra: object) -> Path:
    inputs = make_inputs(root, prompts=8, items=20)
    data = {"store": str(root / "store"), "prompts": inputs["prompts"], "human": {"shards": inputs["shards"], "calibration_sample": 0},
            "teachers": teachers, **extra}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.vllm  # needs the teacher environment (the port is checked before vLLM would start)
@pytest.mark.server
def test_a_taken_port_is_one_line_and_exit_3(prefect_server: PrefectServer, tiny_model_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, [{"name": "tiny", "model": "tiny-teacher",
                                     "launch": {"model_dir": str(tiny_model_dir), "port": port}}])
        done = prefmix("run", "generate", "--config", str(config), "--limit", "4", env=prefect_server.env)
    assert done.returncode == 3, done.stderr[-3000:]
    line = one_line(done.stderr)
    assert line.startswith("prefmix: stopped: ") and f"port {port} on 127.0.0.1 is already in use" in line


def test_explicit_store_wins_over_prefmix_store(tmp_path: Path) -> None:
    chosen = Store.at(tmp_path / "chosen")
    chosen.ensure()
    env = {**_env(), "PREFMIX_STORE": str(tmp_path / "env-store")}  # does not exist: reading it would fail
    done = prefmix("batches", "--json", "--store", str(chosen.root), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    without = prefmix("batches", "--json", env=env)
    assert without.returncode == 2 and str(tmp_path / "env-store") in one_line(without.stderr)
    help_text = prefmix("batches", "--help", env=env).stdout
    assert "wins over PREFMIX_STORE" in " ".join(help_text.split())


def test_a_read_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "no-store"
    for args in (["lineage", "trace", "0" * 64], ["lineage", "impact", "x.parquet"], ["batches"], ["lineage", "show", "b1"]):
        done = prefmix(*args, "--store", str(missing), env=_env())
        assert done.returncode == 2, (args, done.stderr)
        assert one_line(done.stderr) == f"prefmix: error: {missing}: no store here; pass --store DIR or --config FILE (a read never creates a store)"
        assert not missing.exists()


def test_blend_into_staging_takes_the_store_lock(tmp_path: Path) -> None:
    from tests.support.records import make_records

    human = make_records(tmp_path / "h.parquet", "human", 14, "h")
    synthetic = make_records(tmp_path / "s.parquet", "synthetic", 6, "s", run_id="r1")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"store": str(tmp_path / "store")}))
    store = Store.at(tmp_path / "store")
    with store.lock("a nightly run"):
        done = prefmix("blend", "--config", str(config), "--human", str(human), "--synthetic", str(synthetic),
                       "--batch-id", "b1", env=_env())
    assert done.returncode == 2
    assert "store is locked by" in one_line(done.stderr) and "a nightly run" in done.stderr
    assert not store.staging("b1").exists()
    done = prefmix("blend", "--config", str(config), "--human", str(human), "--synthetic", str(synthetic), "--batch-id", "b1", env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (store.staging("b1") / "data").iterdir())


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PREFMIX_STORE", "PREFMIX_CONFIG")} | {"PYTHONPATH": str(REPO)}
