"""The batch manifest: what a batch is, what it was made from, and what happened to it.

Immutability: everything in a manifest except `status_history` is fixed when the batch
is built. `seal` is the sha256 of that fixed part (canonical JSON without
`status_history` and `seal`); `prefmix lineage verify` recomputes it, so an edited
manifest is caught like an edited data file. `status_history` is an append-only
history [{status, at, by, reason}]: staged -> published | quarantined -> overridden.

`content_hash` is the sha256 of the lines "<path>  <sha256>\n" of every data
file, sorted by path (paths relative to the batch directory): two batches with
the same bytes in the same files have the same content hash.

The manifest is the typed `prefmix.contract.Manifest`; its gate report paths are
relative to the batch folder, so they stay right after the batch moves.
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
from pydantic import ValidationError

from prefmix.config import Config
from prefmix.contract import (
    AnnotationStats,
    BatchStatus,
    BlendSummary,
    CodeVersion,
    DatasetVersion,
    DataFile,
    GateResult,
    JudgeHumanAgreement,
    Manifest,
    ManifestCounts,
    ManifestInput,
    ManifestModel,
    StatusEntry,
    SyntheticRun,
)
from prefmix.errors import InputError
from prefmix.hashing import sha256_file, sha256_json
from prefmix.lineage.redact import redact, secret_values
from prefmix.store import atomic_write_json

MANIFEST = "manifest.json"
VERSION = 2
REPO = Path(__file__).resolve().parents[1]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def code_version() -> CodeVersion:
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
    return CodeVersion(
        git_commit=commit.strip() if commit else None,
        git_dirty=bool(status.strip()) if status is not None else None,
        package_version=version,
    )


def data_paths(batch_dir: Path) -> list[Path]:
    """batch_dir/data/**/*.parquet, sorted; dot-files are temp files of an interrupted atomic write."""
    return [p for p in sorted((Path(batch_dir) / "data").rglob("*.parquet")) if not p.name.startswith(".")]


def file_hashes(batch_dir: Path) -> list[tuple[str, str]]:
    """(path, sha256) of the data files, enough for content_hash."""
    return [(p.relative_to(batch_dir).as_posix(), sha256_file(p)) for p in data_paths(batch_dir)]


def _rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def data_files(batch_dir: Path) -> list[DataFile]:
    """Path, sha256, rows and bytes of batch_dir/data/**/*.parquet, sorted by path."""
    batch_dir = Path(batch_dir)
    return [DataFile(path=path, sha256=sha, rows=_rows(batch_dir / path), bytes=(batch_dir / path).stat().st_size)
            for path, sha in file_hashes(batch_dir)]


def content_hash(files: list[DataFile] | list[tuple[str, str]]) -> str:
    pairs = sorted((f.path, f.sha256) if isinstance(f, DataFile) else f for f in files)
    return hashlib.sha256("".join(f"{path}  {sha}\n" for path, sha in pairs).encode("utf-8")).hexdigest()


def seal(manifest: dict[str, Any]) -> str:
    """sha256 of the fixed part of a manifest as plain data (everything but status_history and seal)."""
    return sha256_json({k: v for k, v in manifest.items() if k not in ("status_history", "seal")})


def input_entries(config: Config, human_shards: list[ManifestInput], human_records: str | None,
                  synthetic_records: list[str]) -> list[ManifestInput]:
    """What a nightly batch was made from: the vendor shards, the prompt sets, and the record files the blend read."""
    inputs = list(human_shards)
    inputs += [ManifestInput(role="prompt_set", path=p.path, sha256=sha256_file(p.path)) for p in config.prompts]
    if human_records:
        inputs.append(ManifestInput(role="human_records", path=human_records, sha256=sha256_file(human_records)))
    inputs += [ManifestInput(role="synthetic_records", path=p, sha256=sha256_file(p)) for p in synthetic_records]
    return inputs


def _normalized(inputs: list[ManifestInput], synthetic_runs: list[SyntheticRun]) -> list[ManifestInput]:
    """Absolute local paths with their sha256, and every synthetic run as an input of its own (so
    `impact RUN_ID` finds the batch even if only its record files were listed)."""
    out: list[ManifestInput] = []
    for entry in inputs:
        if not entry.path and not entry.run_id:
            raise InputError(f"manifest input #{len(out)} ({entry.role}): needs 'path' or 'run_id'")
        if entry.path and "://" not in entry.path:
            local = Path(entry.path).expanduser().resolve()
            sha = entry.sha256 or (sha256_file(local) if local.is_file() else None)
            entry = entry.model_copy(update={"path": str(local), "sha256": sha})
        out.append(entry)
    named = {e.run_id for e in out if e.run_id}
    for run in synthetic_runs:
        if run.run_id not in named:
            out.append(ManifestInput(role="synthetic_run", run_id=run.run_id, path=run.path))
            named.add(run.run_id)
    return out


def _models(config: Config) -> list[ManifestModel]:
    """Every configured teacher with its revision and role, so the manifest names models even without synthetic runs."""
    from prefmix.generators.launch import served_model

    judges = {t.name for t in config.judge_teachers()} if config.teachers else set()
    writers = {t.name for t in config.generation_teachers()} if config.teachers else set()
    return [
        ManifestModel(name=t.name, model=t.model, revision=t.revision,
                      roles=[r for r, on in (("generator", t.name in writers), ("judge", t.name in judges)) if on],
                      **served_model(t.launch))
        for t in config.teachers
    ]


def build_manifest(
    *,
    batch_id: str,
    config: Config,
    batch_dir: Path,
    inputs: list[ManifestInput],
    synthetic_runs: list[SyntheticRun],
    blend: BlendSummary,
    annotation_stats: AnnotationStats | None,
    judge_human: JudgeHumanAgreement | None,
    gate: GateResult | None,
    flow_run_id: str | None,
    code: CodeVersion | None = None,
    dataset: DatasetVersion | None = None,
) -> Manifest:
    """The manifest of a staged batch (status 'staged'); secrets are redacted throughout."""
    batch_dir = Path(batch_dir)
    normalized = _normalized(inputs, synthetic_runs)  # bad input entries fail before any hashing
    files = data_files(batch_dir)
    if not files:
        raise InputError(f"{batch_dir / 'data'}: no Parquet files to put in the manifest of batch {batch_id}")
    created = now()
    fixed: dict[str, Any] = {
        "manifest_version": VERSION,
        "batch_id": batch_id,
        "created_at": created,
        "flow_run_id": flow_run_id,
        "content_hash": content_hash(files),
        "rows": sum(f.rows for f in files),
        "files": [f.model_dump(mode="json") for f in files],
        "code_version": (code or code_version()).model_dump(mode="json"),
        "config": config.redacted(),
        "inputs": [i.model_dump(mode="json") for i in normalized],
        "synthetic_runs": [r.model_dump(mode="json") for r in synthetic_runs],
        "models": [m.model_dump(mode="json") for m in _models(config)],
        "counts": ManifestCounts(requested=blend.requested, achieved=blend.achieved, dedup_removed=blend.dedup,
                                 upsampled=blend.upsampled, excluded=blend.excluded).model_dump(mode="json"),
        "blend": blend.model_dump(mode="json"),
        "annotation_stats": annotation_stats.model_dump(mode="json") if annotation_stats else None,
        "judge_human": judge_human.model_dump(mode="json") if judge_human else None,
        "gate": gate.model_copy(update={"report": gate.report.relative_to(batch_dir)}).model_dump(mode="json") if gate else None,
        "dataset": dataset.model_dump(mode="json") if dataset else None,
    }
    fixed = redact(fixed, secret_values(config))
    staged = StatusEntry(status="staged", at=created, by=whoami())
    manifest = Manifest.model_validate({**fixed, "seal": "", "status_history": [staged.model_dump(mode="json")]})
    # Sealed as it will be written (after validation), so verify recomputes the same bytes.
    return manifest.model_copy(update={"seal": seal(manifest.model_dump(mode="json"))})


def with_status(manifest: Manifest, status: BatchStatus, *, by: str | None = None, reason: str | None = None) -> Manifest:
    """A copy of the manifest with one more status entry (the only change allowed after building)."""
    entry = StatusEntry(status=status, at=now(), by=by or whoami(), reason=reason)
    return manifest.model_copy(update={"status_history": [*manifest.status_history, entry]})


def write_manifest(batch_dir: Path, manifest: Manifest) -> Path:
    return atomic_write_json(Path(batch_dir) / MANIFEST, manifest.model_dump(mode="json"))


def read_manifest_data(batch_dir: Path) -> dict[str, Any]:
    """The manifest as written (verify recomputes the seal over exactly these bytes' data)."""
    path = Path(batch_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def read_manifest(batch_dir: Path) -> Manifest:
    path = Path(batch_dir) / MANIFEST
    try:
        return Manifest.model_validate(read_manifest_data(batch_dir))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise InputError(f"{path}: {where}: {first['msg']} (not a prefmix manifest of version {VERSION})") from None
