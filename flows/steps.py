"""Prefect tasks that wire the rooms together; each calls one room's public function.

Retry policy: transient failures (teacher unreachable, I/O) are retried with
exponential backoff; user errors (bad input, config) and gate failures are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from prefmix.flows import progress
from prefmix.config import Config
from prefmix.crash import crash_point
from prefmix.errors import RunAborted, UserError
from prefmix.records import to_arrow
from prefmix.store import Store, sha256_file, write_parquet


def transient(task_: Any, run: Any, state: Any) -> bool:
    """Retry unless the failure is the user's (bad input/config) or a deliberate stop."""
    try:
        state.result()
    except (UserError, RunAborted):
        return False
    except Exception:
        return True
    return False


RETRYABLE: dict[str, Any] = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
                                 retry_jitter_factor=0.5, retry_condition_fn=transient)


@task(name="ingest-human", cache_policy=NO_CACHE)
def ingest_human(config: Config) -> Any:
    from prefmix.annotations.ingest import ingest

    return ingest(config)


@task(name="generate-synthetic", cache_policy=NO_CACHE, **RETRYABLE)
def generate_synthetic(config: Config, store: Store, run_id: str, endpoints: dict[str, list[str]],
                       report: progress.Reporter | None = None) -> Any:
    from prefmix.generators.run import generate

    def on_progress(info: dict[str, Any]) -> None:
        if report is not None:
            report.update({
                "label": "generate", "total": info.get("prompts_total"), "done": info.get("prompts_done", 0),
                "pairs": info.get("records", 0), "rejected": info.get("rejected", 0),
                "requests": info.get("requests_sent", 0), "tok/s": f"{info.get('tokens_per_s', 0.0):.0f}",
            })

    return generate(config, store, run_id, limit=config.generation.limit, teachers=endpoints, on_progress=on_progress)


@task(name="calibrate-judge", cache_policy=NO_CACHE, **RETRYABLE)
def calibrate_judge(config: Config, human_records: pl.DataFrame, endpoints: dict[str, list[str]]) -> dict[str, Any]:
    from prefmix.annotations.calibration import judge_human_agreement, sample_for_calibration
    from prefmix.generators.run import judge_pairs

    sample = sample_for_calibration(human_records, config.human.calibration_sample, config.seed)
    verdicts = judge_pairs(config, sample, teachers=endpoints)
    return judge_human_agreement(sample, verdicts)


@task(name="write-human-records", cache_policy=NO_CACHE)
def write_human_records(store: Store, run_id: str, records: pl.DataFrame) -> str:
    """Normalized human records, content-addressed so reruns and reproduce find the same file."""
    path = write_parquet(to_arrow(records), store.run_dir(run_id) / "human" / "records.parquet")
    final = path.with_name(f"records-{sha256_file(path)[:16]}.parquet")
    path.rename(final)
    return str(final)


@task(name="blend", cache_policy=NO_CACHE)
def blend_batch(config: Config, store: Store, batch_id: str, human: list[str],
                synthetic: list[str]) -> tuple[Path, Any]:
    from prefmix.blending.blend import blend
    from prefmix.lineage.publish import stage_dir

    staged = stage_dir(store, batch_id)
    result = blend(config, human, synthetic, staged, batch_id)
    return staged, result


@task(name="gate", cache_policy=NO_CACHE)
def gate_batch(config: Config, staged: Path, annotation_stats: dict[str, Any],
               judge_human: dict[str, Any] | None) -> Any:
    from prefmix.validators.gate import GateFacts, gate_artifacts, run_gate

    overall = annotation_stats.get("overall", annotation_stats)
    facts = GateFacts(
        human_agreement=overall.get("alpha") if isinstance(overall, dict) else None,
        judge_human=(judge_human or {}).get("agreement"),
    )
    result = run_gate(config, staged, facts)
    gate_artifacts(result, staged.name)
    return result


@task(name="publish", cache_policy=NO_CACHE)
def publish_or_quarantine(*, config: Config, store: Store, batch_id: str, staged: Path, inputs: list[dict[str, Any]],
                          synthetic_runs: list[dict[str, Any]], blend_summary: dict[str, Any],
                          annotation_stats: dict[str, Any] | None, judge_human: dict[str, Any] | None, gate: Any,
                          flow_run_id: str | None, emitter: Any = None, parent: Any = None) -> Path:
    from prefmix.lineage.manifest import build_manifest
    from prefmix.lineage.publish import publish, quarantine

    manifest = build_manifest(
        batch_id=batch_id, config=config, batch_dir=staged, inputs=inputs, synthetic_runs=synthetic_runs,
        blend_summary=blend_summary, annotation_stats=annotation_stats, judge_human=judge_human,
        gate=gate.model_dump(mode="json"), flow_run_id=flow_run_id,
    )
    crash_point("nightly:before-publish")
    move = quarantine if gate.verdict == "fail" else publish
    return move(store, batch_id, manifest, ledger_url=config.lineage.ledger_url, emitter=emitter, parent=parent)
