"""The batch manifest: what a batch is, what it was made from, and what happened to it.

Immutability: everything in a manifest except `status_history` is fixed when the batch
is built. `seal` is the sha256 of that fixed part (canonical JSON without
`status_history` and `seal`); `prefmix lineage verify` recomputes it, so an edited
manifest is caught like an edited data file. `status_history` is an append-only
history [{status, at, by, reason}]: staged -> published | quarantined -> overridden.

`content_hash` is the sha256 of the lines "<path>  <sha256>\n" of every data
file, sorted by path (paths relative to the batch directory): two batches with
the same bytes in the same files have the same content hash.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from prefmix.lineage.redact import redact, secret_values
from prefmix.config import Config
from prefmix.errors import InputError
from prefmix.store import atomic_write_json, sha256_file

MANIFEST = "manifest.json"
VERSION = 1
INPUT_ROLES = ("human_shard", "prompt_set", "synthetic_run", "human_records", "synthetic_records")
STATUSES = ("staged", "published", "quarantined", "overridden")
REPO = Path(__file__).resolve().parents[1]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def code_version() -> dict[str, Any]:
    """git commit and dirty flag of the checkout prefmix runs from (read-only git calls), and the package version."""
    try:
        version = metadata.version("prefmix")
    except metadata.PackageNotFoundError:
        version = None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(status.strip()) if status is not None else None,
        "package_version": version,
    }


def data_paths(batch_dir: Path) -> list[Path]:
    """batch_dir/data/**/*.parquet, sorted; dot-files are temp files of an interrupted atomic write."""
    return [p for p in sorted((Path(batch_dir) / "data").rglob("*.parquet")) if not p.name.startswith(".")]


def file_hashes(batch_dir: Path) -> list[dict[str, Any]]:
    """[{path, sha256}] of the data files, enough for content_hash."""
    return [{"path": p.relative_to(batch_dir).as_posix(), "sha256": sha256_file(p)} for p in data_paths(batch_dir)]


def _rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def data_files(batch_dir: Path) -> list[dict[str, Any]]:
    """[{path, sha256, rows, bytes}] for batch_dir/data/**/*.parquet, sorted by path."""
    return [
        {**entry, "rows": _rows(batch_dir / entry["path"]), "bytes": (batch_dir / entry["path"]).stat().st_size}
        for entry in file_hashes(Path(batch_dir))
    ]


def content_hash(files: list[dict[str, Any]]) -> str:
    lines = "".join(f"{f['path']}  {f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def seal(manifest: dict[str, Any]) -> str:
    fixed = {k: v for k, v in manifest.items() if k not in ("status_history", "seal")}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _input(entry: dict[str, Any], index: int) -> dict[str, Any]:
    role = entry.get("role")
    if role not in INPUT_ROLES:
        raise InputError(f"manifest input #{index}: role {role!r} is not one of {', '.join(INPUT_ROLES)}")
    if not entry.get("path") and not entry.get("run_id"):
        raise InputError(f"manifest input #{index} ({role}): needs 'path' or 'run_id'")
    out = dict(entry)
    path = out.get("path")
    if path:
        if "://" not in str(path):
            local = Path(path).expanduser().resolve()
            out["path"] = str(local)
            if not out.get("sha256") and local.is_file():
                out["sha256"] = sha256_file(local)
        else:
            out["path"] = str(path)
    return out


def _inputs(inputs: list[dict[str, Any]], synthetic_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = [_input(e, i) for i, e in enumerate(inputs)]
    named_runs = {e.get("run_id") for e in result if e.get("run_id")}
    # Every synthetic run is an input too, so `impact RUN_ID` finds the batch even if the flow listed only files.
    for run in synthetic_runs:
        run_id = run.get("run_id")
        if run_id and run_id not in named_runs:
            result.append(_input({"role": "synthetic_run", "run_id": run_id, "path": run.get("path")}, len(result)))
            named_runs.add(run_id)
    return result


def _counts(blend_summary: dict[str, Any]) -> dict[str, Any]:
    """Requested vs achieved counts and dedup removals, whatever the blend summary calls them."""

    def pick(*names: str) -> Any:
        return next((blend_summary[n] for n in names if n in blend_summary), None)

    return {
        "requested": pick("requested", "quotas", "requested_counts"),
        "achieved": pick("achieved", "counts", "achieved_counts", "actual"),
        "dedup_removed": pick("dedup_removed", "dedup", "duplicates_removed", "removed"),
        "upsampled": pick("upsampled"),
        "excluded": pick("excluded"),
    }


def _models(config: Config) -> list[dict[str, Any]]:
    """Every configured teacher with its revision and role, so the manifest names models even without synthetic runs."""
    judge = config.judge_teacher().name if config.teachers else None
    writers = {t.name for t in config.generation_teachers()} if config.teachers else set()
    return [
        {"name": t.name, "model": t.model, "revision": t.revision, "roles": [r for r, on in (("generator", t.name in writers), ("judge", t.name == judge)) if on]}
        for t in config.teachers
    ]


def build_manifest(
    *,
    batch_id: str,
    config: Config,
    batch_dir: Path,
    inputs: list[dict[str, Any]],
    synthetic_runs: list[dict[str, Any]],
    blend_summary: dict[str, Any],
    annotation_stats: dict[str, Any] | None,
    judge_human: dict[str, Any] | None,
    gate: dict[str, Any] | None,
    flow_run_id: str | None,
    code_version: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a staged batch (status 'staged'); secrets are redacted throughout."""
    batch_dir = Path(batch_dir)
    normalized_inputs = _inputs(inputs, synthetic_runs)  # bad input entries fail before any hashing
    files = data_files(batch_dir)
    if not files:
        raise InputError(f"{batch_dir / 'data'}: no Parquet files to put in the manifest of batch {batch_id}")
    secrets = secret_values(config)
    manifest: dict[str, Any] = {
        "manifest_version": VERSION,
        "batch_id": batch_id,
        "created_at": now(),
        "flow_run_id": flow_run_id,
        "content_hash": content_hash(files),
        "rows": sum(f["rows"] for f in files),
        "files": files,
        "code_version": code_version if code_version is not None else _code_version(),
        "config": config.redacted(),
        "inputs": normalized_inputs,
        "synthetic_runs": synthetic_runs,
        "models": _models(config),
        "counts": _counts(blend_summary),
        "blend": blend_summary,
        "annotation_stats": annotation_stats,
        "judge_human": judge_human,
        "gate": gate,
    }
    manifest = redact(json.loads(json.dumps(manifest, default=str)), secrets)
    manifest["seal"] = seal(manifest)
    manifest["status_history"] = [{"status": "staged", "at": manifest["created_at"], "by": whoami(), "reason": None}]
    return manifest


_code_version = code_version  # build_manifest's keyword shadows the function name


def with_status(manifest: dict[str, Any], status: str, *, by: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A copy of the manifest with one more status entry (the only change allowed after building)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    history = [*manifest.get("status_history", []), {"status": status, "at": now(), "by": by or whoami(), "reason": reason}]
    return {**manifest, "status_history": history}


def current_status(manifest: dict[str, Any]) -> str | None:
    history = manifest.get("status_history") or []
    return history[-1]["status"] if history else None


def status_time(manifest: dict[str, Any], *statuses: str) -> str | None:
    times = [s["at"] for s in manifest.get("status_history") or [] if s["status"] in statuses]
    return times[-1] if times else None


def write_manifest(batch_dir: Path, manifest: dict[str, Any]) -> Path:
    return atomic_write_json(Path(batch_dir) / MANIFEST, manifest)


def read_manifest(batch_dir: Path) -> dict[str, Any]:
    path = Path(batch_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON at line {exc.lineno}") from None
