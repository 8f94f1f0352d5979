"""Publication protocol: stage -> publish atomically, or quarantine.

A batch is built in staging/<id>. Publishing writes the manifest (status
'published') and the dataset card into the staged directory, renames it to
batches/<id> (one rename), then moves LATEST (one atomic replace), then indexes
it in the ledger. A crash before the rename leaves the old state (the staged
debris is removed by `recover`); a crash after it leaves a complete batch that
`recover` makes latest; the ledger is only an index and is caught up by `recover`.

LATEST is always the published (or overridden) batch in batches/ with the
newest `created_at`; a quarantined batch is never in batches/, so never latest.

Callers that write (the nightly flow, `prefmix publish --override`) hold the
store lock; these functions do not take it, so a flow can call them under its lock.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefmix.lineage.card import write_card
from prefmix.lineage.ledger import Ledger
from prefmix.lineage.manifest import content_hash, current_status, file_hashes, read_manifest, with_status, write_manifest
from prefmix.crash import CRASH_ENV, crash_point  # noqa: F401  (test hook; CRASH_ENV re-exported)
from prefmix.errors import InputError, UserError
from prefmix.store import Store

if TYPE_CHECKING:
    from prefmix.lineage.events import LineageEmitter, RunRef

log = logging.getLogger(__name__)

CRASH_POINTS = (
    "publish:before-rename",
    "publish:after-rename",
    "publish:after-latest",
    "quarantine:before-rename",
    "override:before-rename",
    "override:after-rename",
)
PUBLISHED = ("published", "overridden")
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id or ""):
        raise InputError(f"batch id {batch_id!r}: expected letters, digits, '.', '_' or '-' (not starting with a symbol)")
    return batch_id


def stage_dir(store: Store, batch_id: str) -> Path:
    """A fresh, empty staging/<id> (with data/); refuses an id that is already published or quarantined."""
    check_batch_id(batch_id)
    for place in (store.batch_dir(batch_id), store.quarantine(batch_id)):
        if place.exists():
            raise UserError(f"batch {batch_id} already exists at {place}; pick a new batch id")
    staged = store.staging(batch_id)
    if staged.exists():
        shutil.rmtree(staged)
    (staged / "data").mkdir(parents=True)
    return staged


def _staged(store: Store, batch_id: str, manifest: dict[str, Any]) -> Path:
    check_batch_id(batch_id)
    if manifest.get("batch_id") != batch_id:
        raise InputError(f"manifest is for batch {manifest.get('batch_id')!r}, not {batch_id!r}")
    staged = store.staging(batch_id)
    if not staged.is_dir():
        raise UserError(f"{staged}: no staged batch {batch_id}")
    for place in (store.batch_dir(batch_id), store.quarantine(batch_id)):
        if place.exists():
            raise UserError(f"batch {batch_id} already exists at {place}")
    # The manifest must describe exactly the bytes being published.
    actual = content_hash(file_hashes(staged))
    if actual != manifest["content_hash"]:
        raise UserError(f"{staged}: data files changed after the manifest was built (content hash {actual[:12]} != {manifest['content_hash'][:12]})")
    return staged


def _published_manifests(store: Store) -> list[dict[str, Any]]:
    base = store.root / "batches"
    found = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if (d / "manifest.json").exists():
                m = read_manifest(d)
                if current_status(m) in PUBLISHED:
                    found.append(m)
    return found


def expected_latest(store: Store) -> str | None:
    """The batch LATEST should name: the newest (by created_at) published batch in batches/."""
    published = _published_manifests(store)
    if not published:
        return None
    return max(published, key=lambda m: (m.get("created_at") or "", m["batch_id"]))["batch_id"]


def _advance_latest(store: Store, manifest: dict[str, Any]) -> bool:
    """Point LATEST at this batch unless the current latest is newer (an override of an old batch)."""
    current = store.latest()
    if current and current != manifest["batch_id"] and store.batch_dir(current).is_dir():
        mine = (manifest.get("created_at") or "", manifest["batch_id"])
        theirs_m = read_manifest(store.batch_dir(current))
        if (theirs_m.get("created_at") or "", current) > mine:
            return False
    store.set_latest(manifest["batch_id"])
    return True


def _index(store: Store, manifest: dict[str, Any], batch_dir: Path, ledger_url: str | None) -> None:
    # The ledger is an index: if it cannot be written now the batch is still published, and recover() catches up.
    try:
        Ledger.for_store(store, ledger_url).index_batch(manifest, batch_dir)
    except UserError as exc:
        log.warning("ledger not updated for batch %s (%s); the next run or `prefmix lineage reindex` will", manifest["batch_id"], exc)


def _event(emitter: "LineageEmitter | None", job: str, parent: "RunRef | None", batch_dir: Path, manifest: dict[str, Any], store: Store) -> Any:
    """The publication's own OpenLineage run; without an emitter from the flow, one from the manifest's config."""
    from prefmix.lineage.events import LineageEmitter, batch_dataset

    if emitter is None:
        emitter = LineageEmitter(_manifest_config(manifest), store)
        if emitter.http_url and "***" in emitter.http_url:
            emitter.http_url = None  # its password was redacted; only the flow's emitter can send there
    return emitter.run(job, parent=parent, outputs=[batch_dataset(batch_dir, manifest)])


def _manifest_config(manifest: dict[str, Any]) -> Any:
    from prefmix.config import Config, parse

    try:
        return parse(manifest.get("config") or {}, "manifest config")
    except UserError:
        return Config()


def publish(
    store: Store,
    batch_id: str,
    manifest: dict[str, Any],
    *,
    ledger_url: str | None = None,
    emitter: "LineageEmitter | None" = None,
    parent: "RunRef | None" = None,
) -> Path:
    """Publish a staged batch; returns batches/<id>. Emits a 'prefmix.publish' OpenLineage run (with
    `emitter`/`parent` from the flow, else to the store's event file) and indexes the ledger at `ledger_url`."""
    staged = _staged(store, batch_id, manifest)
    final = store.batch_dir(batch_id)
    with _event(emitter, "prefmix.publish", parent, final, manifest, store):
        manifest = with_status(manifest, "published")
        write_manifest(staged, manifest)
        write_card(staged, manifest, final)
        crash_point("publish:before-rename")
        store.move(staged, final)
        crash_point("publish:after-rename")
        _advance_latest(store, manifest)
        crash_point("publish:after-latest")
        _index(store, manifest, final, ledger_url)
    return final


def quarantine(
    store: Store,
    batch_id: str,
    manifest: dict[str, Any],
    *,
    ledger_url: str | None = None,
    emitter: "LineageEmitter | None" = None,
    parent: "RunRef | None" = None,
) -> Path:
    """Move a staged batch that failed the gate to quarantine/<id> with its manifest; LATEST is untouched."""
    staged = _staged(store, batch_id, manifest)
    final = store.quarantine(batch_id)
    failed = [c.get("name") for c in (manifest.get("gate") or {}).get("checks") or [] if _blocking_failure(c)]
    reason = "failed checks: " + ", ".join(map(str, failed)) if failed else "failed the gate"
    with _event(emitter, "prefmix.quarantine", parent, final, manifest, store):
        manifest = with_status(manifest, "quarantined", by="gate", reason=reason)
        write_manifest(staged, manifest)
        write_card(staged, manifest, final)
        crash_point("quarantine:before-rename")
        store.move(staged, final)
        _index(store, manifest, final, ledger_url)
    return final


def _blocking_failure(check: dict[str, Any]) -> bool:
    return not check.get("success", True) and check.get("severity", "critical") == "critical"


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
    if content_hash(file_hashes(source)) != manifest["content_hash"]:
        raise UserError(f"{source}: data files differ from the manifest; refusing to publish a changed batch")
    manifest = with_status(manifest, "overridden", by=by, reason=reason.strip())
    final = store.batch_dir(batch_id)
    with _event(None, "prefmix.override", None, final, manifest, store):
        write_manifest(source, manifest)
        write_card(source, manifest, final)
        crash_point("override:before-rename")
        store.move(source, final)
        crash_point("override:after-rename")
        _advance_latest(store, manifest)
        _index(store, manifest, final, ledger_url)
    return final


def recover(store: Store, ledger_url: str | None = None) -> dict[str, Any]:
    """Janitor, run under the store lock at the start of every run: finish or undo what a crash interrupted."""
    report: dict[str, Any] = {"removed_staging": store.clear_staging(), "finished_overrides": [], "latest": None, "indexed": []}
    for tmp in store.root.glob(".LATEST.*.tmp") if store.root.is_dir() else []:
        tmp.unlink(missing_ok=True)
    # Half-written files of killed runs (atomic writes use hidden *.tmp names); finished files are never *.tmp.
    runs = store.root / "runs"
    report["removed_tmp"] = [str(t.relative_to(store.root)) for t in runs.rglob(".*.tmp")] if runs.is_dir() else []
    for tmp in report["removed_tmp"]:
        (store.root / tmp).unlink(missing_ok=True)
    # An override whose manifest was written but whose rename did not happen: the person's decision stands.
    qbase = store.root / "quarantine"
    if qbase.is_dir():
        for d in sorted(qbase.iterdir()):
            if (d / "manifest.json").exists() and current_status(read_manifest(d)) == "overridden":
                store.move(d, store.batch_dir(d.name))
                report["finished_overrides"].append(d.name)
    want, have = expected_latest(store), store.latest()
    if want and want != have:
        store.set_latest(want)
        report["latest"] = {"from": have, "to": want}
    # Catch the ledger up with batches it missed (crash or locked ledger after the rename).
    ledger = Ledger.for_store(store, ledger_url)
    try:
        known = ledger.statuses()
        for d in store.batch_dirs():
            m = read_manifest(d)
            if known.get(m["batch_id"]) != (current_status(m), str(d)):
                ledger.index_batch(m, d)
                report["indexed"].append(m["batch_id"])
    except UserError as exc:
        report["ledger_error"] = str(exc)
    return report
