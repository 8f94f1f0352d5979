"""Landing zones: which files are there, and what each one is (its sha256). Layout-agnostic: a file found here is
a delivery whatever it holds; the rooms turn deliveries into their records (annotations: vendor shards, generators:
prompts), and lineage decides which deliveries are new (lineage/deliveries.py).

A zone is one file (`path`), every `*.parquet` (a trajectory zone: `*.json`, `*.jsonl`, `*.ndjson`, `*.parquet`) directly
in a folder (`path` that is a directory), or a `glob`
(recursive with `**`). Hidden files (a dot name: a half-written copy in progress) are never deliveries.
"""

from __future__ import annotations

import glob as globbing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prefmix.config import Config, HumanShard, LandingZone, PromptSet, TrajectoryShard
from prefmix.errors import InputError
from prefmix.hashing import sha256_file

Zone = TypeVar("Zone", bound=LandingZone)


@dataclass(frozen=True)
class FoundFile:
    """One file in a landing zone, identified by its bytes."""

    path: str
    sha256: str
    bytes: int
    mtime_ns: int = 0


# path -> (bytes, mtime_ns, sha256) of files hashed before: a file with the same name, size and modification time
# is not read again (the nightly's cost follows the new files, not the landing zone's size).
Seen = dict[str, tuple[int, int, str]]


def files_in(zone: LandingZone) -> list[Path]:
    """The files of one zone, sorted by path. A `path` that does not exist is an error; a glob may match nothing."""
    if zone.glob is not None:
        found = [Path(p) for p in globbing.glob(zone.glob, recursive=True)]
    else:
        target = Path(str(zone.path))
        if target.is_dir():
            found = [p for pattern in zone.FOLDER_GLOBS for p in target.glob(pattern)]
        elif target.exists():
            found = [target]
        else:
            raise InputError(f"{target}: file or folder not found")
    return sorted(p.resolve() for p in found if p.is_file() and not p.name.startswith("."))


def found(path: Path, seen: Seen | None = None) -> FoundFile:
    try:
        stat = path.stat()
        known = (seen or {}).get(str(path))
        if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
            return FoundFile(str(path), known[2], stat.st_size, stat.st_mtime_ns)
        return FoundFile(str(path), sha256_file(path), stat.st_size, stat.st_mtime_ns)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def listed(zones: list[Zone]) -> list[tuple[Zone, Path]]:
    """Every file of every zone with the zone it came from (a file in two zones counts once, in the first)."""
    names: set[str] = set()
    out: list[tuple[Zone, Path]] = []
    for zone in zones:
        for path in files_in(zone):
            if str(path) not in names:
                names.add(str(path))
                out.append((zone, path))
    return out


def expand(zones: list[Zone], seen: Seen | None = None) -> list[tuple[Zone, FoundFile]]:
    """Every file of every zone, hashed (unless `seen` knows it unchanged), with the zone it came from."""
    return [(zone, found(path, seen)) for zone, path in listed(zones)]


def as_file(zone: Zone, file: FoundFile) -> Zone:
    """The zone's settings (columns, layout, vendor) for one of its files, as a plain `path:` entry."""
    return zone.model_copy(update={"path": file.path, "glob": None})


def concrete(config: Config) -> Config:
    """The config with every landing zone replaced by its files as `path:` entries (ad hoc runs read them all)."""
    prompts: list[PromptSet] = [as_file(z, f) for z, f in expand(config.prompts)]
    shards: list[HumanShard] = [as_file(z, f) for z, f in expand(config.human.shards)]
    trajectories: list[TrajectoryShard] = [as_file(z, f) for z, f in expand(config.agent.shards)]
    out = config.model_copy(deep=True)
    out.prompts = prompts
    out.human.shards = shards
    out.agent.shards = trajectories
    return out
