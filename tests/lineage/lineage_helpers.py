"""Small real batches for lineage tests: a blend, a manifest, a published batch.

The record files come from the shared factory (tests/support/records.py); `make_records` is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from prefmix.blending.blend import blend as real_blend
from prefmix.lineage.manifest import build_manifest
from prefmix.lineage.publish import release, stage_dir
from prefmix.validators.policy import decide

from prefmix.config import Config
from prefmix.contract import (
    ContentRef,
    GateCheck,
    GateReport,
    GateResult,
    GenerationLineage,
    GenerationSummary,
    JudgeHumanAgreement,
    Manifest,
    ManifestInput,
    ModelRef,
    SyntheticRun,
    TeacherRef,
)
from prefmix.store import Store
from tests.support.records import make_records

__all__ = ["blend_function", "build_batch", "gate_result", "make_records", "pool_file", "publish_batch", "publish_version",
           "synthetic_run"]


def blend_function() -> Callable[..., Any]:
    return real_blend


def gate_result(passed: bool = True, batch_dir: Path | None = None) -> GateResult:
    """A gate result as validators.gate makes it: real check names and severities, the verdict by the one blocking rule."""
    checks = [
        GateCheck(name="non_empty_text", severity="critical", success=True, observed=0, expected="== 0",
                  message="non_empty_text: ok, observed 0, expected == 0"),
        GateCheck(name="unique_record_id", severity="critical", success=passed, observed=0 if passed else 3, expected="== 0",
                  message=f"unique_record_id: {'ok' if passed else 'FAILED'}, observed {0 if passed else 3}, expected == 0"),
        GateCheck(name="pii_share", severity="warning", success=False, observed=0.02, expected="<= 0.01",
                  message="pii_share: FAILED, observed 0.02, expected <= 0.01"),
    ]
    verdict, critical, warning = decide(checks)
    base = batch_dir or Path("report-base")
    report = GateReport(summary_png=str(base / "report" / "summary.png"), validation_json=str(base / "report" / "validation.json"))
    return GateResult(verdict=verdict, checks=checks, failed_critical=critical, failed_warning=warning, report=report)


def synthetic_run(run_id: str) -> SyntheticRun:
    lineage = GenerationLineage(
        strategy="pointwise",
        teachers=[TeacherRef(name="tiny", model="tiny-teacher")],
        judge=ModelRef(name="tiny", model="tiny-teacher"),
        vllm_version="0.0-test",
        sampling={"temperature": 1.0},
        template=ContentRef(id="default@1", sha256="t" * 64),
        fingerprint="f" * 64,
    )
    return SyntheticRun(run_id=run_id, summary=GenerationSummary(prompts_in=6, records=6), **lineage.model_dump())


def build_batch(
    store: Store,
    config: Config,
    batch_id: str,
    human: list[Path],
    synthetic: list[Path],
    *,
    shards: list[Path] = (),  # type: ignore[assignment]
    run_ids: list[str] = (),  # type: ignore[assignment]
    passed: bool = True,
) -> Manifest:
    """Stage and blend a batch with the real blend, return its manifest (not yet published)."""
    staged = stage_dir(store, batch_id)
    result = real_blend(config, list(human), list(synthetic), staged, batch_id)
    inputs = [ManifestInput(role="human_records", path=str(p)) for p in human]
    inputs += [ManifestInput(role="synthetic_records", path=str(p)) for p in synthetic]
    inputs += [ManifestInput(role="human_shard", path=str(p), vendor="acme") for p in shards]
    judge = JudgeHumanAgreement(pairs=10, judged=10, unjudged=0, agree=5, disagree=5, share=0.5, agreement=0.5)
    return build_manifest(
        batch_id=batch_id,
        config=config,
        batch_dir=staged,
        inputs=inputs,
        synthetic_runs=[synthetic_run(r) for r in run_ids],
        blend=result.summary,
        annotation_stats=None,
        judge_human=judge,
        gate=gate_result(passed, staged),
        flow_run_id="flow-run-1",
    )


def publish_batch(store: Store, config: Config, batch_id: str, human: list[Path], synthetic: list[Path], **kw: Any) -> Path:
    """Build a batch and publish it, or quarantine it when its gate fails (as the nightly flow does)."""
    return release(store, build_batch(store, config, batch_id, human, synthetic, **kw), ledger_url=config.lineage.ledger_url)


def pool_file(path: Path, source: str, day: str, run_id: str | None = None, fingerprint: str | None = None) -> "PoolFile":
    """A record file (from make_records) as a dataset's pool file: one delivery, its rows' origin."""
    import polars as pl

    from prefmix.contract import PoolFile, PromptRange

    frame = pl.read_parquet(path)
    sha = frame["origin_sha256"][0]
    coverage = [PromptRange(sha256=sha, start=0, stop=frame.height)] if source == "synthetic" else []
    from prefmix.store import sha256_file

    return PoolFile(path=str(path), sha256=sha256_file(path), source=source, rows=frame.height, day=day, deliveries=[sha],
                    vendor=None if source == "synthetic" else frame["annotation"].struct.field("vendor")[0], run_id=run_id,
                    fingerprint=fingerprint, teachers=["tiny"] if source == "synthetic" else [], coverage=coverage)


def publish_version(store: Store, config: Config, dataset: str, day: str, new: list[Any], *, ledger_url: str | None = None,
                    rules: list[Any] = (), passed: bool = True) -> Path:  # type: ignore[assignment]
    """The next version of `dataset` from its pool plus `new` pool files, through lineage's own steps (version plan,
    blend, changes, manifest with its dataset section, the one publication protocol)."""
    from prefmix.contract import DatasetVersion, Delivery
    from prefmix.lineage.changes import version_changes, write_changes
    from prefmix.lineage.manifest import data_paths
    from prefmix.lineage.versions import base_of, plan_version

    base = base_of(store, dataset)
    new_shas = {sha for f in new for sha in f.deliveries}
    plan = plan_version(store, dataset, day, base, new, fingerprint="f" * 64, window_days=None, rules=list(rules),
                        new_deliveries=new_shas)
    batch_id = f"{dataset}-{day}"
    staged = stage_dir(store, batch_id)
    result = real_blend(config, plan.human_files, plan.synthetic_files, staged, batch_id)
    files = [p.relative_to(staged).as_posix() for p in data_paths(staged)]
    changes = write_changes(staged, version_changes(staged, files, base.batch_dir if base else None,
                                                    [f.path for f in base.manifest.files] if base else [], plan.reasons))
    deliveries = [Delivery(kind="human_shard" if f.source == "human" else "prompts", path=f"/landing/{f.deliveries[0][:8]}.parquet",
                           sha256=f.deliveries[0], bytes=1, status="new", rows=f.rows, vendor=f.vendor) for f in new]
    section = DatasetVersion(name=dataset, version=plan.version, base_version=base.version if base else None, day=day,
                             fingerprint="f" * 64, deliveries=deliveries, pool=plan.pool, retractions=plan.retractions,
                             excluded=plan.excluded, retracted_rows=plan.retracted_rows, changes=changes)
    manifest = build_manifest(batch_id=batch_id, config=config, batch_dir=staged, inputs=plan.inputs, synthetic_runs=[],
                              blend=result.summary, annotation_stats=None, judge_human=None, gate=gate_result(passed, staged),
                              flow_run_id=None, dataset=section)
    return release(store, manifest, ledger_url=ledger_url)
