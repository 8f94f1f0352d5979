"""Publication protocol: stage -> publish atomically, or quarantine; override; recover.

A batch is built in staging/<id>. One function, `_move_batch`, carries every
move out of a folder (publish: staging -> batches, quarantine: staging ->
quarantine, override: quarantine -> batches), always in the same order:
manifest with its new status and the dataset card written into the source
folder, crash point, one rename, crash point, then (for a published batch)
LATEST moved with one atomic replace, crash point, then the ledger indexed.
A crash before the rename leaves the old state (staged debris is removed by
`recover`); a crash after it leaves a complete batch that `recover` makes
latest; the ledger is only an index and is caught up by `recover`.

LATEST is always the published (or overridden) batch in batches/ with the
newest `created_at`; a quarantined batch is never in batches/, so never latest.
Whether a batch is published or quarantined is the gate's verdict
(validators.policy.decide); `release` only reads it.

Callers that write (the nightly flow, `prefmix publish --override`) hold the
store lock; these functions do not take it, so a flow can call them under its lock.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prefmix.contract import PUBLISHED, BatchStatus, Manifest, RecoverReport
from prefmix.crash import CRASH_ENV, crash_point  # noqa: F401  (test hook; CRASH_ENV re-exported)
from prefmix.errors import UserError
from prefmix.lineage.batch import check_batch_id
from prefmix.lineage.card import write_card
from prefmix.lineage.ledger import Ledger
from prefmix.lineage.manifest import content_hash, file_hashes, read_manifest, with_status, write_manifest
from prefmix.lineage.versions import check_base
from prefmix.store import Store

if TYPE_CHECKING:
    from prefmix.lineage.events import LineageEmitter, RunRef

log = logging.getLogger(__name__)

MOVES = ("publish", "quarantine", "override")
CRASH_POINTS = tuple(f"{move}:{step}" for move in MOVES for step in ("before-rename", "after-rename", "after-latest")
                     if not (move == "quarantine" and step == "after-latest"))
# A dataset version: after the batch is in batches/ and the store's LATEST moved, its datasets/NAME/vN link is
# made (one rename), then the dataset's LATEST is moved (one replace), then the ledger is indexed.
VERSION_POINTS = ("version:after-link", "version:after-latest")


def stage_dir(store: Store, batch_id: str) -> Path:
    """A fresh, empty staging/<id> (with data/); refuses an id that is already published or quarantined."""
    check_batch_id(batch_id)
    _refuse_existing(store, batch_id, "; pick a new batch id")
    staged = store.staging(batch_id)
    if staged.exists():
        shutil.rmtree(staged)
    (staged / "data").mkdir(parents=True)
    return staged


def _refuse_existing(store: Store, batch_id: str, hint: str = "") -> None:
    for place in (store.batch_dir(batch_id), store.quarantine(batch_id)):
        if place.exists():
            raise UserError(f"batch {batch_id} already exists at {place}{hint}")


def _check_unchanged(folder: Path, manifest: Manifest) -> None:
    """The manifest must describe exactly the bytes being moved."""
    actual = content_hash(file_hashes(folder))
    if actual != manifest.content_hash:
        raise UserError(f"{folder}: data files changed after the manifest was built (content hash {actual[:12]} != {manifest.content_hash[:12]})")


def _staged(store: Store, manifest: Manifest) -> Path:
    batch_id = check_batch_id(manifest.batch_id)
    staged = store.staging(batch_id)
    if not staged.is_dir():
        raise UserError(f"{staged}: no staged batch {batch_id}")
    _refuse_existing(store, batch_id)
    _check_unchanged(staged, manifest)
    return staged


def expected_latest(store: Store) -> str | None:
    """The batch LATEST should name: the newest (by created_at) published batch in batches/."""
    published = [m for m in (read_manifest(d) for d in store.published_dirs()) if m.status in PUBLISHED]
    if not published:
        return None
    return max(published, key=lambda m: (m.created_at, m.batch_id)).batch_id


def _advance_latest(store: Store, manifest: Manifest) -> bool:
    """Point LATEST at this batch unless the current latest is newer (an override of an old batch)."""
    current = store.latest()
    if current and current != manifest.batch_id and store.batch_dir(current).is_dir():
        theirs = read_manifest(store.batch_dir(current))
        if (theirs.created_at, current) > (manifest.created_at, manifest.batch_id):
            return False
    store.set_latest(manifest.batch_id)
    return True


def _index(store: Store, manifest: Manifest, batch_dir: Path, ledger_url: str | None) -> None:
    # The ledger is an index: if it cannot be written now the batch is still published, and recover() catches up.
    try:
        Ledger.for_store(store, ledger_url).index_batch(manifest, batch_dir)
    except UserError as exc:
        log.warning("ledger not updated for batch %s (%s); the next run or `prefmix lineage reindex` will", manifest.batch_id, exc)


def _event(emitter: "LineageEmitter | None", job: str, parent: "RunRef | None", batch_dir: Path, manifest: Manifest, store: Store):  # type: ignore[no-untyped-def]
    """The publication's own OpenLineage run; without an emitter from the flow, one from the manifest's config."""
    from prefmix.lineage.events import LineageEmitter, batch_dataset

    if emitter is None:
        emitter = LineageEmitter(_manifest_config(manifest), store)
        if emitter.http_url and "***" in emitter.http_url:
            emitter.http_url = None  # its password was redacted; only the flow's emitter can send there
    return emitter.run(job, parent=parent, outputs=[batch_dataset(batch_dir, manifest)])


def _manifest_config(manifest: Manifest):  # type: ignore[no-untyped-def]
    from prefmix.config import Config, parse

    try:
        return parse(manifest.config, "manifest config")
    except UserError:
        return Config()


def _link_version(store: Store, manifest: Manifest, final: Path) -> None:
    """datasets/NAME/vN -> the batch (one rename), then the dataset's LATEST (moved last; never backwards)."""
    info = manifest.dataset
    assert info is not None
    store.link_version(info.name, info.version, final)
    crash_point("version:after-link")
    if (store.dataset_latest(info.name) or 0) < info.version:
        store.set_dataset_latest(info.name, info.version)
    crash_point("version:after-latest")


def _move_batch(store: Store, move: str, source: Path, final: Path, manifest: Manifest, *, ledger_url: str | None,
                emitter: "LineageEmitter | None", parent: "RunRef | None") -> Path:
    """The one publication protocol (see the module docstring); `move` names its crash points and event."""
    publishes = manifest.status in PUBLISHED
    version = manifest.dataset is not None and publishes
    shown_at = store.version_path(manifest.dataset.name, manifest.dataset.version) if version and manifest.dataset else final
    with _event(emitter, f"prefmix.{move}", parent, final, manifest, store):
        write_manifest(source, manifest)
        write_card(source, manifest, shown_at)
        crash_point(f"{move}:before-rename")
        store.move(source, final)
        crash_point(f"{move}:after-rename")
        if publishes:
            _advance_latest(store, manifest)
            crash_point(f"{move}:after-latest")
        if version:
            _link_version(store, manifest, final)
        _index(store, manifest, final, ledger_url)
    return final


def publish(store: Store, manifest: Manifest, *, ledger_url: str | None = None,
            emitter: "LineageEmitter | None" = None, parent: "RunRef | None" = None) -> Path:
    """Publish a staged batch; returns batches/<id>. Emits a 'prefmix.publish' OpenLineage run (with
    `emitter`/`parent` from the flow, else to the store's event file) and indexes the ledger at `ledger_url`."""
    staged = _staged(store, manifest)
    check_base(store, manifest)
    return _move_batch(store, "publish", staged, store.batch_dir(manifest.batch_id), with_status(manifest, "published"),
                       ledger_url=ledger_url, emitter=emitter, parent=parent)


def quarantine(store: Store, manifest: Manifest, *, ledger_url: str | None = None,
               emitter: "LineageEmitter | None" = None, parent: "RunRef | None" = None) -> Path:
    """Move a staged batch that failed the gate to quarantine/<id> with its manifest; LATEST is untouched."""
    staged = _staged(store, manifest)
    failed = manifest.gate.failed_critical if manifest.gate else []
    reason = "failed checks: " + ", ".join(failed) if failed else "failed the gate"
    return _move_batch(store, "quarantine", staged, store.quarantine(manifest.batch_id),
                       with_status(manifest, "quarantined", by="gate", reason=reason),
                       ledger_url=ledger_url, emitter=emitter, parent=parent)


def release(store: Store, manifest: Manifest, *, ledger_url: str | None = None,
            emitter: "LineageEmitter | None" = None, parent: "RunRef | None" = None) -> Path:
    """Publish or quarantine a staged batch as its gate verdict says; returns where it now lives."""
    move = quarantine if manifest.gate is not None and manifest.gate.blocks else publish
    return move(store, manifest, ledger_url=ledger_url, emitter=emitter, parent=parent)


def override(store: Store, batch_id: str, reason: str, by: str | None = None, *, ledger_url: str | None = None) -> Path:
    """Publish a quarantined batch by a person's decision; the reason and who decided are kept in the manifest."""
    check_batch_id(batch_id)
    if not (reason or "").strip():
        raise UserError("publish --override needs --reason TEXT saying why the failed batch is published")
    source = store.quarantine(batch_id)
    if not source.is_dir():
        where = "already published" if store.batch_dir(batch_id).is_dir() else "not found in quarantine/"
        raise UserError(f"batch {batch_id}: {where}; only a quarantined batch can be published with --override")
    manifest = read_manifest(source)
    try:
        _check_unchanged(source, manifest)
    except UserError:
        raise UserError(f"{source}: data files differ from the manifest; refusing to publish a changed batch") from None
    check_base(store, manifest)  # a dataset batch becomes the version it was built as, only on top of its base
    return _move_batch(store, "override", source, store.batch_dir(batch_id),
                       with_status(manifest, "overridden", by=by, reason=reason.strip()),
                       ledger_url=ledger_url, emitter=None, parent=None)


@dataclass(frozen=True)
class _Seen:
    """What recover needs of a batch folder: from the ledger when it indexed the folder where it is, else its manifest."""

    batch_id: str
    folder: Path
    status: str
    created_at: str
    dataset: str | None
    version: int | None
    manifest: Manifest | None  # read only when the ledger could not vouch for the folder


def _survey_batches(store: Store, indexed: dict[str, tuple[str, str, str, str | None, int | None]]) -> list[_Seen]:
    """Every finished batch folder; manifests are read only for folders the ledger does not know at that place
    (a store of a year of nightly versions is not re-read every night)."""
    seen: list[_Seen] = []
    for folder in store.batch_dirs():
        known = indexed.get(folder.name)
        if known is not None and known[1] == str(folder):
            status, _, created_at, dataset, version = known
            seen.append(_Seen(folder.name, folder, status, created_at, dataset, version, None))
        else:
            m = read_manifest(folder)
            seen.append(_Seen(m.batch_id, folder, m.status, m.created_at, m.dataset.name if m.dataset else None,
                              m.dataset.version if m.dataset else None, m))
    return seen


def recover(store: Store, ledger_url: str | None = None) -> RecoverReport:
    """Janitor, run under the store lock at the start of every run: finish or undo what a crash interrupted."""
    from prefmix.lineage.ledger import index_order, read_retractions

    report = RecoverReport(removed_staging=store.clear_staging(), removed_tmp=store.remove_tmp_files())
    # An override whose manifest was written but whose rename did not happen: the person's decision stands.
    for folder in store.quarantined_dirs():
        if read_manifest(folder).status == "overridden":
            store.move(folder, store.batch_dir(folder.name))
            report.finished_overrides.append(folder.name)
    ledger = Ledger.for_store(store, ledger_url)
    try:
        if ledger.stale():
            from prefmix.lineage.ledger import reindex

            reindex(store, ledger_url)
            report.reindexed = True
            ledger = Ledger.for_store(store, ledger_url)
        indexed = ledger.batch_index()
    except UserError as exc:
        report.ledger_error = str(exc)
        indexed = {}
    batches = _survey_batches(store, indexed)
    published = [b for b in batches if b.status in PUBLISHED and b.folder.parent.name == "batches"]
    want = max(published, key=lambda b: (b.created_at, b.batch_id)).batch_id if published else None
    have = store.latest()
    if want and want != have:
        store.set_latest(want)
        report.latest = {"from": have, "to": want}
    _finish_versions(store, [b for b in published if b.dataset and b.version], report)
    if report.ledger_error:
        return report
    # Catch the ledger up with batches it missed (crash or locked ledger after the rename), versions in order.
    try:
        missed = [(b.manifest, b.folder) for b in batches if b.manifest is not None]
        for manifest, folder in index_order(missed):  # type: ignore[arg-type]
            ledger.index_batch(manifest, folder)
            report.indexed.append(manifest.batch_id)
        known_ids = ledger.retraction_ids()
        for retraction in read_retractions(store):
            if retraction.retraction_id not in known_ids:
                ledger.record_retraction(retraction)
    except UserError as exc:
        report.ledger_error = str(exc)
    return report


def _finish_versions(store: Store, published: list[_Seen], report: RecoverReport) -> None:
    """Every published dataset batch has its vN link, and each dataset's LATEST names its newest version."""
    newest: dict[str, int] = {}
    for b in published:
        assert b.dataset is not None and b.version is not None
        link = store.version_path(b.dataset, b.version)
        if not link.is_symlink() or link.resolve() != b.folder.resolve():
            store.link_version(b.dataset, b.version, b.folder)
            report.versions_linked.append(f"{b.dataset}/v{b.version}")
        newest[b.dataset] = max(newest.get(b.dataset, 0), b.version)
    for name, version in sorted(newest.items()):
        if store.dataset_latest(name) != version:
            store.set_dataset_latest(name, version)
            report.dataset_latest[name] = f"v{version}"
