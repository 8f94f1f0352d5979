"""Versioned constitutions (principles for critique-and-revise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefmix.errors import InputError
from prefmix.hashing import sha256_json
from prefmix.yamlio import read_yaml

DEFAULT = Path(__file__).resolve().parent / "constitutions" / "default.yaml"


@dataclass(frozen=True)
class Principle:
    id: str
    critique: str
    revision: str


@dataclass(frozen=True)
class Constitution:
    id: str
    version: int
    sha256: str
    principles: tuple[Principle, ...]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"


def _principles(path: Path, raw: Any) -> tuple[Principle, ...]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: constitution has no principles; expected a non-empty 'principles' list")
    out: list[Principle] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k] for k in ("id", "critique", "revision")):
            raise InputError(f"{path}: principles[{i}]: expected a mapping with string 'id', 'critique' and 'revision'")
        out.append(Principle(item["id"], item["critique"], item["revision"]))
    ids = [p.id for p in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"{path}: principle id {dupes[0]!r} appears more than once")
    return tuple(out)


def load_constitution(path: str | Path | None = None) -> Constitution:
    """The constitution at `path`, or the built-in default; sha256 covers id, version and all principles."""
    path = Path(path) if path else DEFAULT
    data = read_yaml(path, "constitution (generation.constitution)")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise InputError(f"{path}: expected a mapping with 'id', 'version' and 'principles'")
    principles = _principles(path, data.get("principles"))
    version = int(data.get("version", 1))
    digest = sha256_json({"id": data["id"], "version": version, "principles": [p.__dict__ for p in principles]})
    return Constitution(data["id"], version, digest, principles)
