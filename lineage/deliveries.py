"""Intake: which landing-zone files are new deliveries of a dataset, and which were ingested before.

A delivery is identified by its sha256 and ingested once. The ledger knows which sha256 a version ingested (and
which names it saw them under); when it cannot answer (locked, behind the manifests), the manifests of the
dataset's versions do, more slowly. Statuses (prefmix.contract.Delivery):

    new        bytes never ingested, under a name never seen
    changed    bytes never ingested, under a name that held other bytes: a new delivery, and the run says so
    known      these bytes under this name were seen by an earlier version
    duplicate  these bytes were ingested under another name: skipped (counted, never ingested twice)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from pathlib import Path

from prefmix.config import Config, HumanShard, PromptSet, TrajectoryShard
from prefmix.contract import Delivery, DatasetVersion
from prefmix.errors import UserError
from prefmix.intake import FoundFile, as_file, found, listed
from prefmix.store import Store

if TYPE_CHECKING:
    from prefmix.lineage.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Known:
    """What earlier versions of a dataset did with landing-zone files."""

    ingested: dict[str, dict[str, object]] = field(default_factory=dict)  # sha256 -> {path, version}
    seen: dict[str, list[str]] = field(default_factory=dict)  # path -> every sha256 seen under it
    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # path -> (bytes, mtime_ns, sha256) when seen


@dataclass
class Survey:
    """Tonight's landing zones: every file with its status, and the new ones with their zone's settings."""

    dataset: str
    deliveries: list[Delivery]
    prompts: list[PromptSet]  # new prompt deliveries, one `path:` entry each
    shards: list[HumanShard]  # new vendor deliveries, one `path:` entry each
    empty_zones: list[str]  # zones that matched no file
    trajectories: list[TrajectoryShard] = field(default_factory=list)  # new agent-run deliveries, one `path:` entry each

    @property
    def new(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.is_new]

    def sha256(self) -> dict[str, str]:
        return {d.path: d.sha256 for d in self.deliveries}


def known_from_manifests(store: Store, dataset: str) -> Known:
    """The slow path: every version's manifest of the dataset (used when the ledger cannot answer)."""
    from prefmix.lineage.manifest import read_manifest

    known = Known()
    for version, batch_dir in store.linked_versions(dataset).items():
        manifest = read_manifest(batch_dir)
        for d in manifest.dataset.deliveries if manifest.dataset else []:
            if d.is_new:
                known.ingested.setdefault(d.sha256, {"path": d.path, "version": version})
            if d.status in ("new", "changed", "duplicate"):
                known.seen.setdefault(d.path, []).append(d.sha256)
                if d.mtime_ns is not None:
                    known.files[d.path] = (d.bytes, d.mtime_ns, d.sha256)
    return known


def _ledger(store: Store, dataset: str, ledger_url: str | None) -> "Ledger | None":
    """The ledger, when it is caught up with the dataset's LATEST (else the manifests are read)."""
    from prefmix.lineage.ledger import Ledger

    latest = store.dataset_latest(dataset) if store.root.is_dir() else None
    if latest is None:
        return None
    try:
        ledger = Ledger(ledger_url) if ledger_url else (Ledger.for_reading(store) if store.ledger_path.is_file() else None)
        if ledger is not None and not ledger.stale():
            indexed = [v["version"] for v in ledger.versions(dataset)]
            if indexed and indexed[-1] == latest:
                return ledger
    except UserError as exc:
        log.warning("ledger not readable (%s); reading the deliveries of dataset %s from its manifests", exc, dataset)
    return None


def known_deliveries(store: Store, dataset: str, paths: list[str], ledger_url: str | None) -> Known:
    """What earlier versions did with these files: from the ledger when it can answer, else from the manifests."""
    if not store.root.is_dir() or store.dataset_latest(dataset) is None:
        return Known()
    ledger = _ledger(store, dataset, ledger_url)
    if ledger is None:
        return known_from_manifests(store, dataset)
    files = ledger.seen_files(dataset)
    return Known(ingested={}, seen=ledger.seen_paths(dataset, paths), files=files)


def _with_ingested(known: Known, store: Store, dataset: str, shas: list[str], ledger_url: str | None) -> Known:
    if known.ingested or not shas:
        return known
    ledger = _ledger(store, dataset, ledger_url)
    if ledger is not None:
        known.ingested = ledger.ingested(dataset, shas)
    return known


def classify(kind: str, file: FoundFile, known: Known, tonight: dict[str, str],
             zone: PromptSet | HumanShard | TrajectoryShard) -> Delivery:
    """One file's status; `tonight` maps sha256 -> path of the files already classified new tonight."""
    if isinstance(zone, HumanShard):
        extra: dict[str, object] = {"vendor": zone.vendor, "layout": zone.layout, "columns": zone.columns}
    elif isinstance(zone, TrajectoryShard):
        extra = {"vendor": zone.vendor}
    else:
        extra = {"columns": zone.columns}
    base = {"kind": kind, "path": file.path, "sha256": file.sha256, "bytes": file.bytes, "mtime_ns": file.mtime_ns, **extra}
    if file.sha256 in known.seen.get(file.path, []):
        ingested = known.ingested.get(file.sha256)
        return Delivery(status="known", version=int(ingested["version"]) if ingested else None, **base)  # type: ignore[arg-type]
    if file.sha256 in known.ingested:
        first = known.ingested[file.sha256]
        return Delivery(status="duplicate", duplicate_of=str(first["path"]), version=int(first["version"]), **base)  # type: ignore[arg-type]
    if file.sha256 in tonight:
        return Delivery(status="duplicate", duplicate_of=tonight[file.sha256], **base)  # type: ignore[arg-type]
    if file.path in known.seen:
        return Delivery(status="changed", previous_sha256=known.seen[file.path][-1], **base)  # type: ignore[arg-type]
    return Delivery(status="new", **base)  # type: ignore[arg-type]


def survey(config: Config, store: Store, ledger_url: str | None = None) -> Survey:
    """Find, hash and classify every landing-zone file of the config (reads only; never creates the store)."""
    dataset = config.dataset_name()
    prompt_paths, shard_paths, run_paths = listed(config.prompts), listed(config.human.shards), listed(config.agent.shards)
    listed_zones = [*prompt_paths, *shard_paths, *run_paths]
    empty = [z.where for z in [*config.prompts, *config.human.shards, *config.agent.shards]
             if not any(z is zone for zone, _ in listed_zones)]
    known = known_deliveries(store, dataset, [str(p) for _, p in listed_zones], ledger_url)
    # unchanged files are not read again
    prompt_files, shard_files, run_files = ([(zone, found(path, known.files)) for zone, path in paths]
                                            for paths in (prompt_paths, shard_paths, run_paths))
    known = _with_ingested(known, store, dataset, [f.sha256 for _, f in [*prompt_files, *shard_files, *run_files]], ledger_url)
    tonight: dict[str, str] = {}
    deliveries: list[Delivery] = []
    new: dict[str, list] = {"prompts": [], "human_shard": [], "trajectories": []}
    for kind, pairs in (("prompts", prompt_files), ("human_shard", shard_files), ("trajectories", run_files)):
        for zone, file in pairs:
            delivery = classify(kind, file, known, tonight, zone)
            deliveries.append(delivery)
            if delivery.is_new:
                tonight[file.sha256] = file.path
                new[kind].append(as_file(zone, file))
    return Survey(dataset, deliveries, new["prompts"], new["human_shard"], empty, new["trajectories"])


def prompt_pool(base: DatasetVersion | None, survey: Survey, retracted: set[str]) -> list[Delivery]:
    """Every prompt delivery of the dataset to date (the base version's and tonight's new ones), less retracted ones."""
    pool = {d.sha256: d for d in (base.prompts if base else [])}
    for d in survey.new:
        if d.kind == "prompts":
            pool.setdefault(d.sha256, d)
    return [d for sha, d in pool.items() if sha not in retracted]


def located(delivery: Delivery) -> Path:
    """The file of a delivery, which must still be there (regenerating its prompts reads it again)."""
    path = Path(delivery.path)
    if not path.is_file():
        raise UserError(f"{path}: prompt delivery {delivery.sha256[:12]} is gone; its prompts need generating again")
    return path
