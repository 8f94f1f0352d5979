"""Tiny nightly setups and the store invariants every reliability test checks (the CLI runner is
tests/support/cli.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import polars as pl

from tests.support import REPO
from tests.support.cli import PREFMIX, prefmix
from tests.support.nightly import make_inputs, write_config

DEAD_TEACHER = "http://127.0.0.1:9/v1"  # discard port: nothing listens, so any request would be refused


PROMPTS_PER_NIGHT = 40


def make_setup(root: Path, teacher_url: str, model: str, *, prompts: int = PROMPTS_PER_NIGHT, items: int = 16, seed: int = 7,
               **extra: Any) -> Path:
    """Sample vendor shards under root/inputs, a prompt landing zone root/inputs/prompts/ (each night's run drops
    its own delivery there: `deliver`) and a small config at root/config.yaml."""
    inputs = make_inputs(root, prompts=prompts, items=items, seed=seed)
    zone = root / "inputs" / "prompts"
    zone.mkdir(parents=True, exist_ok=True)
    Path(inputs["prompts"][0]["path"]).rename(zone / "first.parquet")
    inputs["prompts"] = [{"glob": str(zone / "*.parquet")}]
    small = {"human__calibration_sample": 8, "generation__sampling__max_tokens": 12, "generation__chunk_size": 4}
    return write_config(root, teacher_url, model, inputs, **{**small, **extra})


def deliver(config: Path, day: str, prompts: int = PROMPTS_PER_NIGHT) -> Path:
    """The day's prompt delivery in the setup's landing zone (written once: a rerun of the day sees the same
    file), so every night has new prompts to generate."""
    from prefmix.samples import write_prompts

    path = config.parent / "inputs" / "prompts" / f"{day}.parquet"
    if not path.exists():
        write_prompts(path, prompts, seed=int(day.replace("-", "")))
    return path


def env_for(prefect_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFMIX_CRASH_AT", "PREFMIX_STORE")}
    if prefect_url:
        env["PREFECT_API_URL"] = prefect_url
    return {**env, **extra}


def nightly(config: Path, day: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    deliver(config, day)
    return prefmix("run", "nightly", "--config", str(config), "--json", "--date", day, env=env, timeout=timeout)


def start_nightly(config: Path, day: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    deliver(config, day)
    handle = open(log, "wb")
    return subprocess.Popen([*PREFMIX, "run", "nightly", "--config", str(config), "--json", "--date", day],
                            cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


# --- invariants -------------------------------------------------------------------------------------------------

def latest(store: Path) -> str | None:
    try:
        return (store / "LATEST").read_text().strip() or None
    except FileNotFoundError:
        return None


def verify(store: Path, batch_id: str, env: dict[str, str]) -> None:
    done = prefmix("lineage", "verify", batch_id, "--store", str(store), env=env, timeout=300)
    assert done.returncode == 0, f"lineage verify {batch_id}: {done.stdout[-1500:]} {done.stderr[-1500:]}"


def check_published(store: Path, allowed: set[str | None], env: dict[str, str]) -> str | None:
    """LATEST names one of `allowed`; that batch is complete (status published, files match its manifest)."""
    current = latest(store)
    assert current in allowed, f"LATEST is {current!r}, expected one of {allowed}"
    if current is not None:
        manifest = json.loads((store / "batches" / current / "manifest.json").read_text())
        assert manifest["status_history"][-1]["status"] in ("published", "overridden")
        verify(store, current, env)
    # Every batch folder is whole: a manifest, and data files that match it (no half-published batch).
    for area in ("batches", "quarantine"):
        for batch in sorted((store / area).glob("*")) if (store / area).is_dir() else []:
            assert (batch / "manifest.json").is_file(), f"{batch}: batch folder without a manifest"
    return current


def check_accounting(store: Path, run_id: str) -> dict[str, Any]:
    """prompts_in == records + rejections; every prompt row exactly once; no record_id twice across chunks."""
    run = store / "runs" / run_id
    summary = json.loads((run / "summary.json").read_text())["summary"]
    rejected = sum(summary["rejections"].values())
    assert summary["prompts_in"] == summary["records"] + rejected, summary
    records = pl.concat([pl.read_parquet(p) for p in sorted((run / "chunks").glob("chunk-*.parquet"))], how="diagonal_relaxed")
    rejections = pl.concat([pl.read_parquet(p) for p in sorted((run / "rejections").glob("chunk-*.parquet"))], how="diagonal_relaxed")
    assert records.height == summary["records"] and rejections.height == rejected
    assert records["record_id"].n_unique() == records.height, "a record_id appears in two chunk files"
    rows = pl.concat([records.select("origin_uri", "origin_row"), rejections.select("origin_uri", "origin_row")])
    assert rows.height == summary["prompts_in"] and rows.unique().height == rows.height, "a prompt ended twice"
    assert sorted(rows["origin_row"].to_list()) == list(range(summary["prompts_in"])), "a prompt was lost"
    return summary


def check_deliveries(store: Path) -> None:
    """A delivery the ledger marks ingested is held by a version that exists (linked, published, listing it)."""
    import sqlite3

    ledger = store / "ledger.sqlite"
    if not ledger.exists():
        return
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT d.sha256, d.version, l.dataset FROM deliveries d JOIN lines l ON l.pk = d.line_pk "
                          "WHERE d.status = 'ingested'").fetchall()
    for sha, version, dataset in rows:
        link = store / "datasets" / dataset / f"v{version}"
        assert link.exists(), f"delivery {sha[:12]} marked ingested into {dataset} v{version}, which does not exist"
        manifest = json.loads((link / "manifest.json").read_text())
        assert manifest["status_history"][-1]["status"] in ("published", "overridden")
        assert sha in {d["sha256"] for d in manifest["dataset"]["deliveries"] if d["status"] in ("new", "changed")}


def debris(store: Path) -> list[str]:
    """What a successful run must not leave behind: staged batches and temp files outside run folders."""
    found = [str(p) for p in (store / "staging").glob("*")] if (store / "staging").is_dir() else []
    for area in (store, store / "batches", store / "quarantine"):
        found += [str(p) for p in area.rglob(".*.tmp")] if area.is_dir() and area != store else []
    found += [str(p) for p in store.glob(".*.tmp")]
    return found
