"""Where everything lives, and the primitives that keep it consistent.

Layout under the store root:

    inputs/                 sample data written by `prefmix demo`
    runs/<run_id>/          generation runs: chunks/, rejections/, requests.sqlite, run.json
    staging/<batch_id>/     a batch being built or gated (never read by consumers)
    batches/<batch_id>/     published batches: data/*.parquet, manifest.json, report/, README.md
    quarantine/<batch_id>/  batches that failed the gate, with their report
    LATEST                  the id of the current published batch (moved last, atomically)
    datasets/<name>/vN      version N of a dataset: a link to the batch folder published as that version
    datasets/<name>/LATEST  the dataset's current version, "vN" (moved after the link, atomically)
    pool/human/             accepted human records, one file per vendor delivery (content-addressed)
    pool/synthetic/         accepted synthetic records, one file per generation run (content-addressed)
    pool/filtered/          pool files less retracted rows (content-addressed, reused while nothing changes)
    retractions/<id>.json   retractions (the ledger indexes them; rebuilt from these files)
    ledger.sqlite           index of manifests (rebuildable)
    lineage/events.jsonl    OpenLineage events
    .lock                   held by the process that writes

A batch directory moves from staging/ to batches/ or quarantine/ with one
rename, and LATEST is replaced with one rename after that, so a crash leaves
either the old or the new published state.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from prefmix import locks
from prefmix.errors import ConfigError, InputError, StoreLocked, UserError
from prefmix.hashing import sha256_file  # noqa: F401  (re-exported: a store's files are named by it)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[str]:
    """A new temp file beside `path` for the body to write and fsync; it replaces `path` in one rename when the
    body is done and is removed when the body fails (a dot-file: readers of the folder pass it over)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, rename over the target."""
    path = Path(path)
    with _replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(table: pa.Table, path: str | Path, row_group_size: int = 64_000, compression: str = "zstd",
                  statistics: bool = True, dictionary: bool = True) -> Path:
    """Atomic, deterministic Parquet write (same table -> same bytes). Random data (hashes) is written faster
    without compression, statistics or dictionaries, none of which would make it smaller."""
    path = Path(path)
    with _replacing(path) as tmp:
        pq.write_table(table, tmp, compression=compression, row_group_size=row_group_size, write_statistics=statistics,
                       use_dictionary=dictionary)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    return path


_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_batch_id(batch_id: str) -> str:
    """A batch id names a folder: letters, digits, '.', '_', '-', not starting with a symbol."""
    if not _BATCH_ID.match(batch_id or ""):
        raise InputError(f"batch id {batch_id!r}: expected letters, digits, '.', '_' or '-' (not starting with a symbol)")
    return batch_id


class Under:
    """A fixed path of a folder layout, read like a property: `parts` under the folder in attribute `base`."""

    def __init__(self, *parts: str, base: str = "root") -> None:
        self.parts, self.base = parts, base

    def __get__(self, obj: object, owner: type | None = None) -> Path:
        if obj is None:  # looked up on the class (help, introspection): the descriptor, as with a property
            return self  # type: ignore[return-value]
        return Path(getattr(obj, self.base)).joinpath(*self.parts)


@dataclass(frozen=True)
class Store:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "Store":
        """The store at `root` (not created). Which root a command uses is decided by its caller
        (`prefmix.context`: --store, then PREFMIX_STORE, then the config's `store`)."""
        raw = str(root)
        if "://" in raw and not raw.startswith("file://"):
            raise ConfigError(f"store: {raw}: object-store URIs are not supported yet; use a local or mounted path")
        root = Path(raw.removeprefix("file://")).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root}: store path exists and is not a directory")
        return cls(root)

    # locations -------------------------------------------------------------
    inputs = Under("inputs")
    latest_file = Under("LATEST")
    pool_dir = Under("pool")
    retractions_dir = Under("retractions")
    ledger_path = Under("ledger.sqlite")
    events_path = Under("lineage", "events.jsonl")
    # prompt sketches the gate rebuilt for published batches whose own was made another way (derived data:
    # removing the folder only costs the next gate the rebuild)
    prompt_sketch_cache = Under("cache", "prompt_sketches")

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def staging(self, batch_id: str) -> Path:
        return self.root / "staging" / batch_id

    def batch_dir(self, batch_id: str) -> Path:
        return self.root / "batches" / batch_id

    def quarantine(self, batch_id: str) -> Path:
        return self.root / "quarantine" / batch_id

    # datasets ----------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        return self.root / "datasets" / name

    def version_path(self, name: str, version: int) -> Path:
        return self.dataset_dir(name) / f"v{version}"

    def dataset_latest(self, name: str) -> int | None:
        """The version the dataset's LATEST names (None before its first version)."""
        try:
            text = (self.dataset_dir(name) / "LATEST").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return int(text.removeprefix("v")) if text.removeprefix("v").isdigit() else None

    def set_dataset_latest(self, name: str, version: int) -> None:
        atomic_write_text(self.dataset_dir(name) / "LATEST", f"v{version}\n")

    def linked_versions(self, name: str) -> dict[int, Path]:
        """version -> the batch folder its link points at, for every vN link of the dataset."""
        base = self.dataset_dir(name)
        out: dict[int, Path] = {}
        if base.is_dir():
            for entry in base.iterdir():
                if entry.name.startswith("v") and entry.name[1:].isdigit() and entry.is_symlink():
                    out[int(entry.name[1:])] = (entry.parent / os.readlink(entry)).resolve()
        return dict(sorted(out.items()))

    def dataset_names(self) -> list[str]:
        base = self.root / "datasets"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def link_version(self, name: str, version: int, batch_dir: Path) -> Path:
        """Make datasets/<name>/vN point at the batch folder, in one rename (a relative link: the store can move)."""
        link = self.version_path(name, version)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.path.relpath(batch_dir, link.parent), tmp)
        os.replace(tmp, link)
        fsync_dir(link.parent)
        return link

    def find_batch(self, batch_id: str, staged: bool = True) -> Path | None:
        """Where batch `batch_id` is (published, quarantined or, with `staged`, staged), by its manifest."""
        places = (self.batch_dir(batch_id), self.quarantine(batch_id), *([self.staging(batch_id)] if staged else []))
        for place in places:
            if (place / "manifest.json").exists():
                return place
        return None

    def require(self) -> "Store":
        """This store, which must exist: read and audit commands never create one."""
        if not self.root.is_dir():
            raise UserError(f"{self.root}: no store here; pass --store DIR or --config FILE (a read never creates a store)")
        return self

    def batch_dirs(self) -> list[Path]:
        """Every finished batch (published, then quarantined), by its manifest."""
        return [*self.published_dirs(), *self.quarantined_dirs()]

    def published_dirs(self) -> list[Path]:
        return self._with_manifest(self.root / "batches")

    def quarantined_dirs(self) -> list[Path]:
        return self._with_manifest(self.root / "quarantine")

    @staticmethod
    def _with_manifest(base: Path) -> list[Path]:
        return [p for p in sorted(base.iterdir()) if (p / "manifest.json").exists()] if base.is_dir() else []

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
        taken = lambda holder: StoreLocked(f"{self.root}: store is locked by {holder}; wait for it to finish")  # noqa: E731
        with locks.exclusive(self.root / ".lock", what, taken):
            yield

    def remove_tmp_files(self) -> list[str]:
        """Remove half-written files of killed writers (atomic writes use hidden *.tmp names; a finished file
        never has one); returns those under runs/, relative to the root (a LATEST temp file is not news)."""
        if not self.root.is_dir():
            return []
        for tmp in [*self.root.glob(".LATEST.*.tmp"), *self.root.glob("datasets/*/.*.tmp"), *self.root.glob("pool/*/.*.tmp"),
                    *self.root.glob("retractions/.*.tmp")]:
            tmp.unlink(missing_ok=True)
        runs = self.root / "runs"
        removed = sorted(runs.rglob(".*.tmp")) if runs.is_dir() else []
        for tmp in removed:
            tmp.unlink(missing_ok=True)
        return [str(t.relative_to(self.root)) for t in removed]

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
