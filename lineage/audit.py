"""Audit queries over a store: list, show, trace, impact, diff, verify, reproduce.

Each takes data (store, ids) and returns plain data; commands.py prints it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import polars as pl

from prefmix.contract import DataFile, Manifest
from prefmix.errors import InputError, UserError
from prefmix.hashing import sha256_file
from prefmix.lineage.ledger import Ledger
from prefmix.lineage.manifest import content_hash, data_files, data_paths, read_manifest, read_manifest_data, seal
from prefmix.store import Store, check_batch_id

BlendFn = Callable[..., Any]


def locate(store: Store, batch_id: str) -> Path:
    check_batch_id(batch_id)
    found = store.require().find_batch(batch_id)
    if found is None:
        raise UserError(f"batch {batch_id}: not found in {store.root} (batches/, quarantine/ or staging/)")
    return found


def failed_checks(manifest: Manifest) -> list[dict[str, Any]]:
    checks = manifest.gate.checks if manifest.gate else []
    return [{"name": c.name, "severity": c.severity} for c in checks if not c.success]


def list_batches(store: Store) -> list[dict[str, Any]]:
    latest = store.require().latest()
    rows = []
    for d in store.batch_dirs():
        m = read_manifest(d)
        rows.append(
            {
                "batch_id": m.batch_id,
                "status": m.status,
                "latest": m.batch_id == latest,
                "rows": m.rows,
                "created_at": m.created_at,
                "content_hash": m.content_hash,
                "dataset": m.dataset.name if m.dataset else None,
                "version": m.dataset.version if m.dataset and m.status in ("published", "overridden") else None,
                "failed_checks": failed_checks(m),
                "path": str(d),
            }
        )
    return sorted(rows, key=lambda r: (r["created_at"] or "", r["batch_id"]))


def show(store: Store, batch_id: str) -> dict[str, Any]:
    path = locate(store, batch_id)
    return {"path": str(path), "latest": store.latest() == batch_id, "manifest": read_manifest(path).model_dump(mode="json")}


def _record_row(batch_dir: Path, manifest: Manifest, file_no: int, file_row: int, record_id: str) -> dict[str, Any] | None:
    """The record's details, reading only the row group that holds it (a batch file may have 1M rows)."""
    import pyarrow.parquet as pq

    if not 0 <= file_no < len(manifest.files):
        return None
    path = batch_dir / manifest.files[file_no].path
    if not path.exists():
        return None
    parquet = pq.ParquetFile(path)
    start = 0
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if file_row < start + size:
            columns = ["record_id", "domain", "split", "prompt", "generation", "annotation"]
            row = parquet.read_row_group(group, columns=columns).slice(file_row - start, 1).to_pylist()[0]
            return row if row.pop("record_id") == record_id else None  # a changed file is verify's business
        start += size
    return None


def trace(store: Store, record_id: str, ledger_url: str | None = None) -> dict[str, Any]:
    """Every batch (and dataset version) holding the record, its origin file/row/sha256, and its generation run
    or annotators (read once, from the batch that first held it: lineage is stored once)."""
    ledger = Ledger.for_reading(store, ledger_url)
    ledger.create()
    hits = ledger.trace(record_id)
    manifests: dict[str, Manifest] = {}
    details: dict[tuple[str, int, int], dict[str, Any] | None] = {}

    def manifest_at(folder: Path) -> Manifest | None:
        if str(folder) not in manifests and (folder / "manifest.json").exists():
            manifests[str(folder)] = read_manifest(folder)
        return manifests.get(str(folder))

    for hit in hits:
        source = Path(hit.pop("read_from") or hit["location"])
        at = (str(source), hit.pop("file_no"), hit.pop("file_row"))
        if at not in details:
            first = manifest_at(source)
            details[at] = _record_row(source, first, at[1], at[2], record_id) if first else None
        row = dict(details[at] or {})
        if row:
            prompt = row.pop("prompt")
            hit["prompt_preview"] = prompt[:120]
            hit.update({k: v for k, v in row.items() if v is not None})
        manifest = manifest_at(source)  # the batch that first held it ran the record's generation run
        run = next((r for r in (manifest.synthetic_runs if manifest else []) if hit["run_id"] and r.run_id == hit["run_id"]), None)
        if run is not None:
            hit["run"] = run.model_dump(mode="json")
    return {"record_id": record_id, "batches": hits}


def impact(store: Store, ref: str, ledger_url: str | None = None) -> dict[str, Any]:
    ledger = Ledger.for_reading(store, ledger_url)
    ledger.create()
    latest = store.latest()
    hits = ledger.impact(ref.removeprefix("sha256:"))
    for hit in hits:
        hit["latest"] = hit["batch_id"] == latest
    return {"ref": ref, "batches": hits}


def impact_selector(store: Store, kind: str, value: str, dataset: str | None = None, ledger_url: str | None = None) -> dict[str, Any]:
    """Every version (or batch) holding rows a retraction selector matches, with how many."""
    ledger = Ledger.for_reading(store, ledger_url)
    hits = ledger.impact_selector(kind, value, dataset)
    latest = {name: store.dataset_latest(name) for name in {h["dataset"] for h in hits if h["dataset"]}}
    for hit in hits:
        hit["latest"] = hit["dataset"] is not None and latest.get(hit["dataset"]) == hit["version"]
        if hit["dataset"]:
            hit["path"] = str(store.version_path(hit["dataset"], hit["version"]))
    return {"selector": {"kind": kind, "value": value}, "dataset": dataset, "versions": hits}


def diff_versions(store: Store, dataset: str, a: str, b: str, ledger_url: str | None = None) -> dict[str, Any]:
    """Record ids added and removed from version A to B of a dataset, each with its reason (from the ledger)."""
    from prefmix.lineage.versions import parse_version

    va, vb = parse_version(a), parse_version(b)  # a bad version is found before the store is read
    ledger = Ledger.for_reading(store, ledger_url)
    found = ledger.diff_versions(dataset, va, vb)

    def by_reason(rows: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in rows:
            out[r["reason"] or "unknown"] = out.get(r["reason"] or "unknown", 0) + 1
        return dict(sorted(out.items()))

    return {"dataset": dataset, "a": va, "b": vb, "added": found["added"], "removed": found["removed"],
            "reasons": {"added": by_reason(found["added"]), "removed": by_reason(found["removed"])}}


def verify(store: Store, batch_id: str) -> dict[str, Any]:
    """Re-hash every file against the manifest; also catches missing, extra and edited-manifest cases."""
    path = locate(store, batch_id)
    data = read_manifest_data(path)  # as written: an edit that breaks the shape is a finding, not a crash
    try:
        listed_files = [DataFile.model_validate(f) for f in data.get("files") or []]
    except ValueError as exc:
        raise InputError(f"{path / 'manifest.json'}: files: not a prefmix file list ({str(exc).splitlines()[0]})") from None
    problems: list[dict[str, str]] = []
    listed = set()
    for f in listed_files:
        listed.add(f.path)
        target = path / f.path
        if not target.exists():
            problems.append({"path": f.path, "problem": "missing"})
        elif (actual := sha256_file(target)) != f.sha256:
            problems.append({"path": f.path, "problem": f"sha256 {actual} != manifest {f.sha256}"})
    for extra in data_files_listing(path):
        if extra not in listed:
            problems.append({"path": extra, "problem": "not in the manifest"})
    changes = (data.get("dataset") or {}).get("changes") or {}
    if changes:
        target = path / changes["path"]
        if not target.exists():
            problems.append({"path": changes["path"], "problem": "missing"})
        elif (actual := sha256_file(target)) != changes["sha256"]:
            problems.append({"path": changes["path"], "problem": f"sha256 {actual} != manifest {changes['sha256']}"})
    if content_hash(listed_files) != data.get("content_hash"):
        problems.append({"path": "manifest.json", "problem": "content_hash does not match its file list"})
    if data.get("seal") and seal(data) != data["seal"]:
        problems.append({"path": "manifest.json", "problem": "manifest edited after it was built (seal mismatch)"})
    return {"batch_id": batch_id, "path": str(path), "ok": not problems, "files": len(listed_files), "problems": problems}


def data_files_listing(batch_dir: Path) -> list[str]:
    return [p.relative_to(batch_dir).as_posix() for p in data_paths(batch_dir)]


# reproduce -------------------------------------------------------------------
def _default_blend() -> BlendFn:
    try:
        from prefmix.blending.blend import blend
    except ImportError as exc:
        raise UserError(f"reproduce needs blending.blend.blend, which is not importable ({exc})") from None
    return blend


def reproduce_inputs(manifest: Manifest) -> tuple[list[Path], list[Path]]:
    """The record files the blend read, each checked against its recorded sha256."""
    human: list[Path] = []
    synthetic: list[Path] = []
    for entry in manifest.inputs:
        if entry.role not in ("human_records", "synthetic_records") or not entry.path:
            continue
        path = Path(entry.path)
        if not path.is_file():
            raise InputError(f"{path}: input of batch {manifest.batch_id} ({entry.role}) no longer exists")
        if not entry.sha256:
            raise InputError(f"{path}: manifest of batch {manifest.batch_id} has no sha256 for this input")
        if sha256_file(path) != entry.sha256:
            raise InputError(f"{path}: changed since batch {manifest.batch_id} was built (sha256 differs from the manifest)")
        (human if entry.role == "human_records" else synthetic).append(path)
    if not human and not synthetic:
        raise InputError(f"batch {manifest.batch_id}: manifest lists no human_records or synthetic_records inputs to rebuild from")
    return human, synthetic


def first_difference(expected_dir: Path, expected: list[DataFile], actual_dir: Path, actual: list[DataFile]) -> dict[str, Any]:
    """The first file (by path) that differs and, when both sides have it, the first differing row and column."""
    mine = {f.path: f for f in expected}
    theirs = {f.path: f for f in actual}
    for path in sorted(set(mine) | set(theirs)):
        if path not in theirs:
            return {"file": path, "problem": "missing from the rebuild"}
        if path not in mine:
            return {"file": path, "problem": "extra in the rebuild"}
        if mine[path].sha256 == theirs[path].sha256:
            continue
        a = pl.read_parquet(expected_dir / path)
        b = pl.read_parquet(actual_dir / path)
        if a.schema != b.schema:
            return {"file": path, "problem": "schema differs"}
        n = min(a.height, b.height)
        for column in a.columns:
            same = a[column].head(n).eq_missing(b[column].head(n)) if a[column].dtype.is_nested() is False else None
            if same is None:
                left = a[column].head(n).to_list()
                right = b[column].head(n).to_list()
                rows = [i for i in range(n) if left[i] != right[i]]
            else:
                rows = (~same).arg_true().to_list()
            if rows:
                return {"file": path, "row": rows[0], "column": column, "expected": str(a[column][rows[0]])[:200], "got": str(b[column][rows[0]])[:200]}
        if a.height != b.height:
            return {"file": path, "row": n, "problem": f"rows {a.height} expected, {b.height} rebuilt"}
        return {"file": path, "problem": "same rows, different bytes (Parquet encoding)"}
    return {}


def reproduce(store: Store, batch_id: str, *, scratch: Path | None = None, keep: bool = False, blend: BlendFn | None = None) -> dict[str, Any]:
    """Rebuild the blend from the manifest's inputs and config into a scratch dir and compare content hashes."""
    from prefmix.config import parse

    path = locate(store, batch_id)
    manifest = read_manifest(path)
    human, synthetic = reproduce_inputs(manifest)
    config = parse(manifest.config, f"{path / 'manifest.json'}: config")
    blend_fn = blend or _default_blend()
    owned = scratch is None
    out = Path(tempfile.mkdtemp(prefix=f"prefmix-reproduce-{batch_id}-")) if owned else Path(scratch)
    try:
        blend_fn(config, human, synthetic, out, batch_id)
        rebuilt = data_files(out)
        result: dict[str, Any] = {
            "batch_id": batch_id,
            "expected": manifest.content_hash,
            "content_hash": content_hash(rebuilt),
            "scratch": str(out) if keep or not owned else None,
        }
        result["same"] = result["content_hash"] == result["expected"]
        if not result["same"]:
            result["first_difference"] = first_difference(path, manifest.files, out, rebuilt)
        return result
    finally:
        if owned and not keep:
            shutil.rmtree(out, ignore_errors=True)


# diff ------------------------------------------------------------------------
def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(data, sort_keys=True, default=str)}


def _keys(batch_dir: Path, manifest: Manifest) -> pl.DataFrame:
    return pl.scan_parquet([batch_dir / f.path for f in manifest.files]).select("record_id", "source", "domain").unique().collect()


def diff(store: Store, a: str, b: str) -> dict[str, Any]:
    """Rows added and removed per source and domain from A to B, and what changed in config and inputs."""
    dir_a, dir_b = locate(store, a), locate(store, b)
    man_a, man_b = read_manifest(dir_a), read_manifest(dir_b)
    keys_a, keys_b = _keys(dir_a, man_a), _keys(dir_b, man_b)

    def counts(frame: pl.DataFrame) -> list[dict[str, Any]]:
        return frame.group_by("source", "domain").agg(pl.len().alias("rows")).sort("source", "domain").to_dicts()

    added = keys_b.join(keys_a, on="record_id", how="anti")
    removed = keys_a.join(keys_b, on="record_id", how="anti")
    conf_a, conf_b = _flatten(man_a.config), _flatten(man_b.config)
    config_changes = [
        {"key": k, "a": json.loads(conf_a[k]) if k in conf_a else None, "b": json.loads(conf_b[k]) if k in conf_b else None}
        for k in sorted(set(conf_a) | set(conf_b))
        if conf_a.get(k) != conf_b.get(k)
    ]

    def input_keys(m: Manifest) -> set[tuple[Any, ...]]:
        return {(i.role, i.path, i.sha256, i.run_id) for i in m.inputs}

    def as_dicts(items: set[tuple[Any, ...]]) -> list[dict[str, Any]]:
        return [dict(zip(("role", "path", "sha256", "run_id"), t)) for t in sorted(items, key=lambda t: tuple(str(x) for x in t))]

    ins_a, ins_b = input_keys(man_a), input_keys(man_b)
    return {
        "a": a,
        "b": b,
        "rows": {"a": keys_a.height, "b": keys_b.height, "kept": keys_b.height - added.height},
        "added": counts(added),
        "removed": counts(removed),
        "config_changes": config_changes,
        "inputs_added": as_dicts(ins_b - ins_a),
        "inputs_removed": as_dicts(ins_a - ins_b),
    }
