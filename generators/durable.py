"""Durable, chunked output of one generation run under store.run_dir(run_id).

    run.json                     run id, config fingerprint (a resume must match it), plan
    chunks/chunk-NNNNN.parquet   canonical records of chunk N (written last: its existence means "chunk done")
    rejections/chunk-NNNNN.parquet
    stats/chunk-NNNNN.json       request and token counts of chunk N
    sessions/<id>.json           wall time of each generate/run_chunk call
    requests.sqlite              finished requests by payload hash (WAL), so a restart re-sends only what was in flight
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import polars as pl

from prefmix.crash import crash_point
from prefmix import locks
from prefmix.errors import InputError, UserError
from prefmix.hashing import sha256_plain_json
from prefmix.records import to_arrow
from prefmix.store import Store, Under, atomic_write_json, write_parquet

from prefmix.generators.client import ChatResult, dumps, loads

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REJECTION_SCHEMA = pl.Schema(
    {
        "run_id": pl.String,
        "prompt": pl.String,
        "domain": pl.String,
        "origin_uri": pl.String,
        "origin_sha256": pl.String,
        "origin_row": pl.Int64,
        "strategy": pl.String,
        "reason": pl.String,
        "detail": pl.String,
    }
)


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id or ""):
        raise InputError(f"--run-id {run_id!r}: expected letters, digits, '.', '_' or '-' (at most 128, no '/')")
    return run_id


class RequestCache:
    """Finished chat results keyed by a hash of the request; one commit per result (WAL, survives SIGKILL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process kill; fsync per commit not needed
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT NOT NULL)")

    @staticmethod
    def key(model: str, payload: dict[str, Any], salt: str) -> str:
        """Hash of what the server sees plus a salt that tells repeated samples of one prompt apart (the bytes of
        sha256_json, so a run started before resumes from its cache; 2.5 vs 17 us a judge request)."""
        return sha256_plain_json({"model": model, "payload": payload, "salt": salt})

    def get(self, key: str) -> ChatResult | None:
        row = self._db.execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        return ChatResult(**loads(row[0])) if row else None

    def put(self, key: str, result: ChatResult) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, result) VALUES (?, ?)", (key, dumps(result.__dict__))
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class RunDir:
    """Paths and writes of one run directory."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.run_id = check_run_id(run_id)
        self.path = store.run_dir(run_id)

    run_file = Under("run.json", base="path")
    cache_path = Under("requests.sqlite", base="path")
    summary_path = Under("summary.json", base="path")

    def records_file(self, index: int) -> Path:
        return self.path / "chunks" / f"chunk-{index:05d}.parquet"

    def rejections_file(self, index: int) -> Path:
        return self.path / "rejections" / f"chunk-{index:05d}.parquet"

    def stats_file(self, index: int) -> Path:
        return self.path / "stats" / f"chunk-{index:05d}.json"

    def chunk_done(self, index: int) -> bool:
        return self.records_file(index).exists()

    def read_run(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def open(self, fingerprint: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Create run.json, or check that an existing run has the same fingerprint (a resume)."""
        existing = self.read_run()
        if existing is not None:
            if existing.get("fingerprint") != fingerprint:
                changed = _changed_keys(existing.get("fingerprint_inputs", {}), meta.get("fingerprint_inputs", {}))
                raise UserError(
                    f"{self.run_file}: run {self.run_id!r} was started with a different generation config"
                    f" (changed: {', '.join(changed) or 'unknown'}); use a new --run-id or restore the config"
                )
            return existing
        data = {"run_id": self.run_id, "fingerprint": fingerprint, **meta}
        atomic_write_json(self.run_file, data)
        return data

    def write_chunk(self, index: int, records: pl.DataFrame, rejections: pl.DataFrame, stats: dict[str, Any]) -> None:
        """Rejections and stats first, records last: the records file is the chunk's commit mark."""
        write_parquet(rejections.select(list(REJECTION_SCHEMA)).cast(dict(REJECTION_SCHEMA)).to_arrow(), self.rejections_file(index))
        atomic_write_json(self.stats_file(index), stats)
        write_parquet(to_arrow(records), self.records_file(index))
        crash_point("generate:after-chunk")

    def read_stats(self, index: int) -> dict[str, Any]:
        return json.loads(self.stats_file(index).read_text(encoding="utf-8"))

    def write_session(self, session_id: str, data: dict[str, Any]) -> None:
        atomic_write_json(self.path / "sessions" / f"{session_id}.json", data)

    def sessions(self) -> list[dict[str, Any]]:
        base = self.path / "sessions"
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(base.glob("*.json"))] if base.is_dir() else []

    @contextlib.contextmanager
    def lock(self, part: str = "run") -> Iterator[None]:
        """One writer per run (or per chunk, for parallel chunk tasks); a second process fails at once."""
        what = f"run {self.run_id!r}" if part == "run" else f"{part} of run {self.run_id!r}"
        taken = lambda _holder: UserError(f"{self.path}: {what} is being written by another process")  # noqa: E731
        with locks.exclusive(self.path / f".lock-{part}", what, taken):
            yield


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(_changed_keys(a, b, f"{prefix}{key}."))
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
