"""Where everything lives, and the primitives that keep it consistent.

Layout under the store root:

    inputs/                 sample data written by `prefmix demo`
    runs/<run_id>/          generation runs: chunks/, rejections/, requests.sqlite, run.json
    staging/<batch_id>/     a batch being built or gated (never read by consumers)
    batches/<batch_id>/     published batches: data/*.parquet, manifest.json, report/, README.md
    quarantine/<batch_id>/  batches that failed the gate, with their report
    LATEST                  the id of the current published batch (moved last, atomically)
    ledger.sqlite           index of manifests (rebuildable)
    lineage/events.jsonl    OpenLineage events
    .lock                   held by the process that writes

A batch directory moves from staging/ to batches/ or quarantine/ with one
rename, and LATEST is replaced with one rename after that, so a crash leaves
either the old or the new published state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.errors import ConfigError, StoreLocked

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(table: pa.Table, path: str | Path, row_group_size: int = 64_000) -> Path:
    """Atomic, deterministic Parquet write (same table -> same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size, write_statistics=True)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@dataclass(frozen=True)
class Store:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "Store":
        raw = str(os.environ.get("PREFMIX_STORE") or root)
        if "://" in raw and not raw.startswith("file://"):
            raise ConfigError(f"store: {raw}: object-store URIs are not supported yet; use a local or mounted path")
        root = Path(raw.removeprefix("file://")).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root}: store path exists and is not a directory")
        return cls(root)

    # locations -------------------------------------------------------------
    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def staging(self, batch_id: str) -> Path:
        return self.root / "staging" / batch_id

    def batch_dir(self, batch_id: str) -> Path:
        return self.root / "batches" / batch_id

    def quarantine(self, batch_id: str) -> Path:
        return self.root / "quarantine" / batch_id

    @property
    def latest_file(self) -> Path:
        return self.root / "LATEST"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def events_path(self) -> Path:
        return self.root / "lineage" / "events.jsonl"

    def find_batch(self, batch_id: str) -> Path | None:
        for place in (self.batch_dir(batch_id), self.quarantine(batch_id), self.staging(batch_id)):
            if (place / "manifest.json").exists():
                return place
        return None

    def batch_dirs(self) -> list[Path]:
        found: list[Path] = []
        for area in ("batches", "quarantine"):
            base = self.root / area
            if base.is_dir():
                found.extend(p for p in sorted(base.iterdir()) if (p / "manifest.json").exists())
        return found

    # state -------------------------------------------------------------------
    def latest(self) -> str | None:
        try:
            return self.latest_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def set_latest(self, batch_id: str) -> None:
        atomic_write_text(self.latest_file, batch_id + "\n")

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, what: str = "a run") -> Iterator[None]:
        """Exclusive writer lock; a second writer fails at once with a clear message."""
        self.ensure()
        path = self.root / ".lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreLocked(f"{self.root}: store is locked by {holder}; wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({what})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def clear_staging(self) -> list[str]:
        """Remove debris of runs that died before publishing; returns the removed batch ids."""
        base = self.root / "staging"
        removed: list[str] = []
        if base.is_dir():
            for entry in sorted(base.iterdir()):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def move(self, src: Path, dst: Path) -> Path:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
        fsync_dir(dst.parent)
        return dst
