"""Prefect tasks that wire the rooms together; each calls one room's public function.

Retry policy: transient failures (teacher unreachable, I/O) are retried with
exponential backoff; user errors (bad input, config), infrastructure errors
that a retry cannot fix and deliberate stops are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from prefmix.annotations.ingest import HumanIngest
from prefmix.config import Config
from prefmix.contract import (
    AnnotationStats,
    BlendResult,
    Changes,
    DatasetVersion,
    GateFacts,
    GateResult,
    GenerationRun,
    JudgeHumanAgreement,
    ManifestInput,
    PoolFile,
    SyntheticRun,
)
from prefmix.errors import InfraError, RunAborted, UserError
from prefmix.flows import progress
from prefmix.hashing import sha256_file
from prefmix.records import to_arrow
from prefmix.store import Store, write_parquet


def transient(task_: Any, run: Any, state: Any) -> bool:
    """Retry unless the failure is the user's (bad input/config), the infrastructure's, or a deliberate stop."""
    try:
        state.result()
    except (UserError, RunAborted, InfraError):
        return False
    except Exception:
        return True
    return False


RETRYABLE: dict[str, Any] = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
                                 retry_jitter_factor=0.5, retry_condition_fn=transient)


@task(name="ingest-human", cache_policy=NO_CACHE)
def ingest_human(config: Config) -> HumanIngest:
    from prefmix.annotations.ingest import ingest

    return ingest(config)


@task(name="generate-synthetic", cache_policy=NO_CACHE, **RETRYABLE)
def generate_synthetic(config: Config, store: Store, run_id: str, endpoints: dict[str, list[str]],
                       report: progress.Reporter | None = None, prompts: pl.DataFrame | None = None) -> GenerationRun:
    from prefmix.generators.run import generate

    def on_progress(info: dict[str, Any]) -> None:
        if report is not None:
            report.update({
                "label": "generate", "total": info.get("prompts_total"), "done": info.get("prompts_done", 0),
                "pairs": info.get("records", 0), "rejected": info.get("rejected", 0),
                "requests": info.get("requests_sent", 0), "tok/s": f"{info.get('tokens_per_s', 0.0):.0f}",
            })

    return generate(config, store, run_id, limit=config.generation.limit, teachers=endpoints, on_progress=on_progress,
                    prompts=prompts)


@task(name="calibrate-judge", cache_policy=NO_CACHE, **RETRYABLE)
def calibrate_judge(config: Config, human_records: pl.DataFrame, endpoints: dict[str, list[str]]) -> JudgeHumanAgreement:
    from prefmix.annotations.calibration import judge_human_agreement, sample_for_calibration
    from prefmix.generators.run import judge_pairs

    sample = sample_for_calibration(human_records, config.human.calibration_sample, config.seed)
    verdicts = judge_pairs(config, sample, teachers=endpoints)
    return judge_human_agreement(sample, verdicts)


@task(name="agent-rollouts", cache_policy=NO_CACHE, **RETRYABLE)
def agent_rollouts(config: Config, endpoints: dict[str, list[str]], out_file: Path,
                   report: progress.Reporter | None = None) -> tuple[Any, Any]:
    """The tool environment on the agent teacher (trajectories.night.rollouts) -> (Rollouts, AgentRuns)."""
    from prefmix.trajectories.night import rollouts

    def on_progress(done: int, total: int) -> None:
        if report is not None:
            report.update({"label": "rollouts", "total": total, "done": done})

    return rollouts(config, endpoints, out_file, progress=on_progress)


@task(name="derive-agent-rows", cache_policy=NO_CACHE)
def derive_agent_rows(config: Config, store: Store, intake: Any, run_id: str, rolled: tuple[Any, Any] | None,
                      skipped: str | None) -> Any:
    """Tonight's agent runs (deliveries and rollouts) -> AgentRows (lineage.night.agent_night)."""
    from prefmix.lineage.night import agent_night

    return agent_night(config, store, intake, run_id, rolled, skipped)


@task(name="write-human-records", cache_policy=NO_CACHE)
def write_human_records(store: Store, run_id: str, records: pl.DataFrame) -> str:
    """Normalized human records, content-addressed so reruns and reproduce find the same file."""
    path = write_parquet(to_arrow(records), store.run_dir(run_id) / "human" / "records.parquet")
    final = path.with_name(f"records-{sha256_file(path)[:16]}.parquet")
    path.rename(final)
    return str(final)


@task(name="add-to-pool", cache_policy=NO_CACHE)
def add_to_pool(config: Config, store: Store, intake: Any, day: str, run: GenerationRun | None,
                agent: Any = None) -> list[PoolFile]:
    """Tonight's vendor deliveries, generation run and agent rows as pool files (content-addressed: a rerun finds them)."""
    from prefmix.lineage.night import into_pool

    return into_pool(config, store, intake, day, run, agent)


def record_changes(staged: Path, blend: BlendResult, plan: Any) -> Changes:
    """lineage/changes.parquet of the staged version against its base."""
    from prefmix.lineage.changes import version_changes, write_changes
    from prefmix.lineage.manifest import data_paths

    base = plan.base
    files = [p.relative_to(staged).as_posix() for p in data_paths(staged)]  # the manifest's order (file_no)
    frame = version_changes(staged, files, base.batch_dir if base else None,
                            [f.path for f in base.manifest.files] if base else [], plan.reasons)
    return write_changes(staged, frame)


@task(name="blend", cache_policy=NO_CACHE)
def blend_batch(config: Config, store: Store, batch_id: str, human: list[str], synthetic: list[str]) -> tuple[Path, BlendResult]:
    from prefmix.blending.blend import blend
    from prefmix.lineage.publish import stage_dir

    staged = stage_dir(store, batch_id)
    return staged, blend(config, human, synthetic, staged, batch_id)


@task(name="gate", cache_policy=NO_CACHE)
def gate_batch(config: Config, staged: Path, annotation: AnnotationStats, judge_human: JudgeHumanAgreement | None) -> GateResult:
    from prefmix.validators.gate import run_gate

    facts = GateFacts(human_agreement=annotation.overall.alpha, judge_human=judge_human.agreement if judge_human else None)
    return run_gate(config, staged, facts)


@task(name="publish", cache_policy=NO_CACHE)
def publish_batch(*, config: Config, store: Store, batch_id: str, staged: Path, inputs: list[ManifestInput],
                  synthetic_runs: list[SyntheticRun], blend: BlendResult, annotation: AnnotationStats,
                  judge_human: JudgeHumanAgreement | None, gate: GateResult, flow_run_id: str | None,
                  emitter: Any = None, parent: Any = None, dataset: DatasetVersion | None = None) -> Path:
    """Build the manifest and publish or quarantine the batch, as the gate decided; the gate's Prefect
    artifacts are created afterwards, so their links point at where the report now lives."""
    from prefmix.crash import crash_point
    from prefmix.lineage.manifest import build_manifest
    from prefmix.lineage.publish import release
    from prefmix.validators.gate import gate_artifacts

    manifest = build_manifest(
        batch_id=batch_id, config=config, batch_dir=staged, inputs=inputs, synthetic_runs=synthetic_runs,
        blend=blend.summary, annotation_stats=annotation, judge_human=judge_human, gate=gate, flow_run_id=flow_run_id,
        dataset=dataset,
    )
    crash_point("nightly:before-publish")
    final = release(store, manifest, ledger_url=config.lineage.ledger_url, emitter=emitter, parent=parent)
    gate_artifacts(gate.model_copy(update={"report": gate.report.relative_to(staged).resolved(final)}), batch_id)
    return final
