"""Dataset versions: the base a night builds on, which pool files the next version is blended from, and why
rows are left out. Publication itself is lineage/publish.py's one protocol (a version is a published batch with
a `dataset` section, linked as datasets/NAME/vN, the dataset's LATEST moved last).

Which pool files a version uses (every accepted record to date, less):
- window:      files that entered the pool more than dataset.window_days nights ago;
- superseded:  synthetic files made under another generation fingerprint, or (--regenerate) whose prompts a
               newer run under the same fingerprint settled again;
- retraction:  whole files a retraction takes entirely (a delivery, a vendor), rows of others (filtered copies).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from prefmix.contract import PUBLISHED, Manifest, ManifestInput, PoolFile, Retraction
from prefmix.errors import UserError
from prefmix.lineage.changes import Reasons
from prefmix.lineage.pool import filtered, takes_all, touches
from prefmix.store import Store


@dataclass
class Base:
    """The version a night builds on: the dataset's LATEST."""

    version: int
    batch_dir: Path
    manifest: Manifest


def base_of(store: Store, dataset: str) -> Base | None:
    from prefmix.lineage.manifest import read_manifest

    if not store.root.is_dir():
        return None
    latest = store.dataset_latest(dataset)
    if latest is None:
        return None
    path = store.version_path(dataset, latest)
    if not path.exists():
        raise UserError(f"{path}: dataset {dataset!r} LATEST names v{latest}, which has no folder; run the nightly again to repair")
    manifest = read_manifest(path)
    return Base(latest, path.resolve(), manifest)


@dataclass
class VersionPlan:
    version: int
    base: Base | None
    pool: list[PoolFile]  # every pool file to date (the next night starts from these)
    inputs: list[ManifestInput]  # what the blend reads: kept files, or their filtered copies
    excluded: dict[str, int]  # pool rows left out, by reason
    reasons: Reasons
    retractions: list[str]
    human_files: list[str] = field(default_factory=list)
    synthetic_files: list[str] = field(default_factory=list)

    @property
    def retracted_rows(self) -> int:
        return sum(n for reason, n in self.excluded.items() if reason.startswith("retraction:"))


def in_force(rules: list[Retraction], dataset: str) -> list[Retraction]:
    return [r for r in rules if r.dataset in (None, dataset)]


def _covers(newer: list[PoolFile], file: PoolFile) -> bool:
    """Every prompt row `file` settled is settled again by one of `newer`."""
    for part in file.coverage:
        ranges = sorted((r.start, r.stop) for f in newer for r in f.coverage if r.sha256 == part.sha256)
        reach = part.start
        for start, stop in ranges:
            if start <= reach:
                reach = max(reach, stop)
        if reach < part.stop:
            return False
    return True


def plan_version(store: Store, dataset: str, day: str, base: Base | None, new_files: list[PoolFile], *,
                 fingerprint: str | None, window_days: int | None, rules: list[Retraction], new_deliveries: set[str],
                 regenerated_by: str | None = None) -> VersionPlan:
    """The pool of the next version and the files its blend reads (writing filtered copies where retractions
    take single rows). `regenerated_by`: tonight's run under --regenerate, which supersedes older runs it covers."""
    pool = [*(base.manifest.dataset.pool if base and base.manifest.dataset else []), *new_files]
    rules = in_force(rules, dataset)
    cutoff = (dt.date.fromisoformat(day) - dt.timedelta(days=window_days)).isoformat() if window_days else None
    regenerated = [f for f in new_files if f.run_id == regenerated_by]
    why = Reasons(new_deliveries=set(new_deliveries), new_runs={f.run_id for f in new_files if f.run_id})
    excluded: dict[str, int] = {}
    excluded_rows: list[pl.DataFrame] = []
    inputs: list[ManifestInput] = []
    human: list[str] = []
    synthetic: list[str] = []

    def leave_out(file: PoolFile, reason: str) -> None:
        excluded[reason] = excluded.get(reason, 0) + file.rows
        if file.run_id:
            why.dropped_runs[file.run_id] = reason
        else:
            for sha in file.deliveries:
                why.dropped_deliveries[sha] = reason

    for file in pool:
        if cutoff and file.day < cutoff:
            leave_out(file, "window")
            continue
        generated = file.source == "synthetic" and file.kind == "pairs"  # agent rows have no generation fingerprint
        if generated and fingerprint and file.fingerprint != fingerprint:
            leave_out(file, "superseded")
            continue
        if generated and regenerated and file not in regenerated and _covers(regenerated, file):
            leave_out(file, "superseded")
            continue
        whole = next((r for r in rules if takes_all(r, file)), None)
        if whole is not None:
            leave_out(file, f"retraction:{whole.retraction_id}")
            continue
        path, sha, rows = file.path, file.sha256, file.rows
        touching = [r for r in rules if touches(r, file)]
        if touching:
            cut = filtered(store, file, touching)
            path, sha, rows = cut.path, cut.sha256, cut.rows
            for (reason,), group in cut.excluded.group_by("reason"):
                excluded[str(reason)] = excluded.get(str(reason), 0) + group.height
            excluded_rows.append(cut.excluded)
        role = "human_records" if file.source == "human" else "synthetic_records"
        inputs.append(ManifestInput(role=role, path=path, sha256=sha, rows=rows, run_id=file.run_id,
                                    vendor=file.vendor))
        (human if file.source == "human" else synthetic).append(path)
    if excluded_rows:
        why.excluded = pl.concat(excluded_rows, how="vertical")
    version = (base.version if base else 0) + 1
    return VersionPlan(version, base, pool, inputs, dict(sorted(excluded.items())), why, [r.retraction_id for r in rules],
                       human, synthetic)


def check_base(store: Store, manifest: Manifest) -> None:
    """A version is published on top of the version it was built on, which must still be the dataset's LATEST."""
    info = manifest.dataset
    if info is None:
        return
    latest = store.dataset_latest(info.name)
    if latest != info.base_version:
        now = f"v{latest}" if latest else "no version"
        raise UserError(f"batch {manifest.batch_id}: built as {info.name} v{info.version} on "
                        f"{'v' + str(info.base_version) if info.base_version else 'no version'}, but {info.name} is at {now};"
                        " the next nightly run includes its new rows")


def listing(store: Store, dataset: str, ledger_url: str | None = None) -> list[dict[str, object]]:
    """Every version of a dataset (from the ledger), with its stable path and whether it is the LATEST."""
    from prefmix.lineage.ledger import Ledger

    ledger = Ledger.for_reading(store, ledger_url)
    rows = ledger.versions(dataset)
    if not rows and dataset not in store.dataset_names():
        raise UserError(f"dataset {dataset!r}: no versions in {store.root} (datasets: {', '.join(store.dataset_names()) or 'none'})")
    latest = store.dataset_latest(dataset)
    return [{**r, "dataset": dataset, "path": str(store.version_path(dataset, int(r["version"]))),
             "latest": r["version"] == latest} for r in rows if r["status"] in PUBLISHED]


def parse_version(text: str) -> int:
    raw = text.removeprefix("v")
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"version {text!r}: expected vN or N with N >= 1")
    return int(raw)
