"""Faults and kills: every prompt is accounted for exactly once, finished work is kept and not re-sent."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from prefmix.store import Store, sha256_file

from prefmix.generators.run import generate
from tests.generators.fault_proxy import KINDS, FaultProxy
from tests.generators.helpers import config, write_config
from tests.support import REPO
from tests.support.cli import PREFMIX

pytestmark = pytest.mark.vllm


def accounted(run_dir: Path) -> pl.DataFrame:
    """origin rows of all records and rejections of a run."""
    rec = pl.read_parquet(sorted(run_dir.glob("chunks/*.parquet")))
    rej = pl.read_parquet(sorted(run_dir.glob("rejections/*.parquet")))
    return pl.concat([rec.select("origin_row", "record_id"), rej.select("origin_row", pl.lit(None, pl.String).alias("record_id"))])


def test_faults_on_a_fifth_of_requests_still_complete_and_reconcile(vllm_teacher, tmp_path: Path) -> None:
    # Real requests get a timeout a loaded 2-core machine keeps (2 s did not: a whole window timed out and the
    # error budget stopped the run); injected timeouts sleep past it.
    with FaultProxy(vllm_teacher.base_url, kinds=KINDS, every=5, timeout_sleep=12) as proxy:
        cfg = config(tmp_path, proxy.base_url, 40, retry={"max_attempts": 6, "base_delay_s": 0.05, "max_delay_s": 0.5})
        cfg.teachers[0].timeout_s = 6
        run = generate(cfg, Store.at(cfg.store), "faulty")
    s = run.summary.model_dump()
    assert set(proxy.injected) == set(KINDS) and sum(proxy.injected.values()) == proxy.posts // 5
    assert s["prompts_in"] == 40 == s["records"] + sum(s["rejections"].values())
    rows = accounted(Path(run.run_dir))
    assert sorted(rows["origin_row"].to_list()) == list(range(40))
    assert s["records"] > 0
    # a failed attempt never cost a prompt: at most a few exhausted every retry
    assert s["rejections"].get("request_failed", 0) <= 2


def _generate_cmd(cfg_path: Path, run_id: str) -> list[str]:
    return [*PREFMIX, "run", "generate", "--config", str(cfg_path), "--run-id", run_id, "--no-progress"]


def _cached_outside_chunks(run_dir: Path, timeout: float = 5) -> int | None:
    """Finished requests in the cache minus those of written chunks (stats are written before a chunk's records);
    None when the cache cannot be read at this moment."""
    written = [int(p.name[6:11]) for p in run_dir.glob("chunks/*.parquet")]
    in_chunks = sum(json.loads((run_dir / "stats" / f"chunk-{i:05d}.json").read_text())["requests_sent"] for i in written)
    # A plain reader: under WAL a SELECT does not wait for the write lock, but a writer stopped in the middle of a
    # checkpoint or a WAL restart still holds a lock readers need; that moment is simply not the one to kill at.
    try:
        with contextlib.closing(sqlite3.connect(run_dir / "requests.sqlite", timeout=timeout)) as db:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0]) - in_chunks
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return None


def test_sigkill_mid_run_then_resume_accounts_exactly_once(vllm_teacher, tmp_path: Path) -> None:
    n = 160
    cfg_path = write_config(tmp_path, vllm_teacher.base_url, n, chunk_size=8)
    data = yaml.safe_load(cfg_path.read_text())
    data["teachers"][0]["max_in_flight"] = 8  # slow enough to be killed mid-way
    cfg_path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "store" / "runs" / "k1"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_generate_cmd(cfg_path, "k1"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # Kill only at a moment when at least 4 chunks are written and some finished requests are not yet
    # in a written chunk, so the resume below must take them from the cache. The check runs while the
    # process is stopped (SIGSTOP), so what it sees on disk is exactly what the kill leaves.
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited early"
        assert time.monotonic() < deadline, "no moment with finished requests outside written chunks"
        if len(list(run_dir.glob("chunks/*.parquet"))) >= 4:
            proc.send_signal(signal.SIGSTOP)
            if (_cached_outside_chunks(run_dir, timeout=0.2) or 0) > 0:
                break
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    before = {p.name: sha256_file(p) for p in run_dir.glob("chunks/*.parquet")}
    done_before = {int(name[6:11]) for name in before}
    assert 4 <= len(before) < n // 8
    cached_outside = _cached_outside_chunks(run_dir)
    assert cached_outside is not None  # the killed writer holds no lock

    again = subprocess.run(_generate_cmd(cfg_path, "k1"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr

    # records written before the kill are unchanged
    assert {name: sha256_file(run_dir / "chunks" / name) for name in before} == before
    # every prompt exactly once; no duplicate record ids
    rows = accounted(run_dir)
    assert rows.height == n and sorted(rows["origin_row"].to_list()) == list(range(n))
    ids = rows["record_id"].drop_nulls()
    assert ids.n_unique() == ids.len()
    summary = json.loads((run_dir / "summary.json").read_text())["summary"]
    assert summary["prompts_in"] == n == summary["records"] + sum(summary["rejections"].values())
    # every request finished before the kill and not part of a written chunk came from the cache:
    # only the requests in flight at the kill were sent again
    resumed_stats = [
        json.loads(p.read_text()) for p in sorted(run_dir.glob("stats/*.json")) if int(p.name[6:11]) not in done_before
    ]
    assert sum(s["requests_cached"] for s in resumed_stats) == cached_outside
    assert cached_outside > 0


def test_rerun_with_changed_config_is_refused(vllm_teacher, tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, vllm_teacher.base_url, 8)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(_generate_cmd(cfg_path, "c1"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    changed = subprocess.run([*_generate_cmd(cfg_path, "c1"), "--set", "generation.sampling.temperature=0.5"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines() == [
        f"prefmix: error: {tmp_path}/store/runs/c1/run.json: run 'c1' was started with a different generation config"
        " (changed: generation.sampling.temperature); use a new --run-id or restore the config"
    ]


def test_chunk_api_plan_run_finalize(vllm_teacher, tmp_path: Path) -> None:
    from prefmix.errors import UserError

    from prefmix.generators.run import finalize_run, plan_chunks, run_chunk

    cfg = config(tmp_path, vllm_teacher.base_url, 20, chunk_size=8)
    store = Store.at(cfg.store)
    chunks = plan_chunks(cfg, store, "ch", limit=None)
    assert [c.size for c in chunks] == [8, 8, 4] and len({c.key for c in chunks}) == 3
    with pytest.raises(UserError, match="incomplete"):
        finalize_run(cfg, store, "ch")
    results = [run_chunk(cfg, store, "ch", c) for c in reversed(chunks)]  # any order
    assert not any(r.skipped for r in results)
    again = run_chunk(cfg, store, "ch", chunks[0])
    assert again.skipped and again.records == results[-1].records
    run = finalize_run(cfg, store, "ch")
    assert run.summary.prompts_in == 20 == run.summary.records + sum(run.summary.rejections.values())
    assert run.record_files == [r.records_file for r in reversed(results)]
    # a chunk planned from other prompts is refused rather than written under the wrong key
    stale = chunks[1].model_copy(update={"key": "0" * 64})
    (Path(run.run_dir) / "chunks" / "chunk-00001.parquet").unlink()
    with pytest.raises(UserError, match="chunk 1 no longer matches"):
        run_chunk(cfg, store, "ch", stale)
