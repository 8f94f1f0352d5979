"""The ad hoc generation flow: one generation run, its chunks as Prefect tasks.

Each chunk is a task cached by content (run id + the chunk's content hash), with
its result persisted under the run's folder in the store, so every worker of a
Ray cluster sees the same cache and a re-run of a finished generation skips
its finished chunks. Chunks retry with exponential backoff on transient
failures (teacher unreachable, I/O), never on bad input or a deliberate stop.
`task_runner="ray"` spreads the chunks over a Ray cluster (Prefect's
RayTaskRunner); the teachers' endpoints (vLLM replicas) are shared by all.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import TaskRunContext
from prefect.futures import as_completed

from prefmix.config import Config, load
from prefmix.contract import GenerateSummary, GenerationRun
from prefmix.errors import ConfigError
from prefmix.flows import progress
from prefmix.flows.steps import RETRYABLE
from prefmix.hashing import short_hash
from prefmix.slug import slug
from prefmix.store import Store

__all__ = ["GenerateSummary", "configure", "generate"]


def chunk_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Same run, same chunk content -> same key; endpoints and runner do not matter."""
    return f"prefmix-chunk-{parameters['run_id']}-{parameters['chunk'].key}"


def results_dir(store: Store, run_id: str) -> Path:
    """Prefect's persisted chunk results live with the run, where every worker can read them."""
    return store.run_dir(run_id) / "prefect-results"


@task(name="run-chunk", cache_key_fn=chunk_cache_key, persist_result=True, **RETRYABLE)
def run_chunk_task(config: Config, store: Store, run_id: str, chunk: Any,
                   teachers: dict[str, list[str]] | None) -> Any:
    from prefmix.generators.run import run_chunk

    return run_chunk(config, store, run_id, chunk, teachers=teachers, limit=config.generation.limit)


@task(name="finalize-run", **RETRYABLE)
def finalize_task(config: Config, store: Store, run_id: str, teachers: dict[str, list[str]] | None) -> GenerationRun:
    from prefmix.generators.run import finalize_run

    return finalize_run(config, store, run_id, teachers=teachers)


def configure(config_path: str, overrides: list[str] | None, limit: int | None, teacher: str | None,
              run_id: str | None = None) -> Config:
    """The config of one ad hoc run: file + overrides, then the run's own parameters; every mistake is found here."""
    from prefmix.generators.durable import check_run_id
    from prefmix.generators.launch import check_launch

    from prefmix.intake import concrete

    config = concrete(load(config_path, overrides or []))  # landing zones as the files in them now
    if teacher is not None:
        names = [t.name for t in config.teachers]
        if teacher not in names:
            raise ConfigError(f"{config_path}: teacher {teacher!r} is not in teachers {names}")
        config.generation.teachers = [teacher]
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit {limit}: expected a whole number >= 0")
        config.generation.limit = limit
    if run_id is not None:
        check_run_id(run_id)
    check_launch(config)
    return config


def preflight(config: Config) -> int:
    """Read the prompts, templates and constitution the run needs (no network); returns the prompt count."""
    from prefmix.generators.plan import build_plan

    return build_plan(config, "preflight", config.generation.limit).prompts.height


def teacher_label(config: Config) -> str:
    return "+".join(t.name for t in config.generation_teachers()) or "none"


def default_run_id(config: Config) -> str:
    """Same generation config -> same run id, so triggering a finished generation again resumes it (a no-op)."""
    fingerprint = short_hash({"generation": config.generation.model_dump(mode="json"),
                              "teachers": [t.model_dump(mode="json", exclude={"endpoints", "launch"}) for t in config.teachers],
                              "prompts": [p.model_dump(mode="json") for p in config.prompts]})
    return f"gen-{slug(teacher_label(config))}-{fingerprint}"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    try:
        config = configure(params["config_path"], params.get("overrides"), params.get("limit"), params.get("teacher"))
        teacher = teacher_label(config)
    except Exception:  # the flow itself reports a bad config; the name must not fail first
        teacher = params.get("teacher") or "unknown"
    limit = params.get("limit")
    return f"generate-{teacher}-{limit if limit is not None else 'all'}"


def make_task_runner(name: str, ray_address: str | None) -> Any:
    from prefect.task_runners import ThreadPoolTaskRunner

    if name == "thread":
        # Each chunk already keeps up to max_in_flight requests open; a few chunks at once is plenty.
        return ThreadPoolTaskRunner(max_workers=4)
    if name == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise ConfigError("--task-runner ray needs prefect-ray: pip install 'prefmix[ray]'") from None
        return RayTaskRunner(address=ray_address)
    raise ConfigError(f"--task-runner {name!r}: expected 'thread' or 'ray'")


@flow(name="generate", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=True)
def generate(config_path: str, limit: int | None = None, run_id: str | None = None, teacher: str | None = None,
             overrides: list[str] | None = None, task_runner: str = "thread",
             ray_address: str | None = None) -> GenerateSummary:
    """Generate synthetic preference pairs for the config's prompts; chunks run as cached, retried tasks."""
    logger = get_run_logger()
    config = configure(config_path, overrides, limit, teacher, run_id)
    run_id = run_id or default_run_id(config)
    store = Store.at(config.store_root())
    runner = make_task_runner(task_runner, ray_address)  # a bad runner name fails before any work
    summary = run_generation(config, store, run_id, runner, progress.reporter(logger))
    logger.info("generation %s: %s", run_id, summary.summary.model_dump_json())
    _summary_artifact(summary)
    return summary


def run_generation(config: Config, store: Store, run_id: str, runner: Any, report: progress.Reporter) -> GenerateSummary:
    """Plan the chunks, run them as tasks on `runner`, finalize the run; returns the run's summary."""
    from prefmix.generators.launch import launched_teachers
    from prefmix.generators.run import plan_chunks

    chunks = plan_chunks(config, store, run_id, config.generation.limit)
    chunk_task = run_chunk_task.with_options(result_storage=results_dir(store, run_id))
    with launched_teachers(config, store.run_dir(run_id) / "logs") as endpoints:
        # The runner is chosen per run (a parameter), so chunks go to it directly rather than via the flow's.
        with runner:
            futures = [
                runner.submit(chunk_task.with_options(task_run_name=f"chunk-{i}"),
                              {"config": config, "store": store, "run_id": run_id, "chunk": chunk,
                               "teachers": endpoints})
                for i, chunk in enumerate(chunks)
            ]
            report.stage(f"generate {len(chunks)} chunks of run {run_id}")
            pairs = rejected = 0
            for done, future in enumerate(as_completed(futures), start=1):
                chunk = future.result()  # the first failed chunk fails the flow, with its own error
                pairs, rejected = pairs + chunk.records, rejected + sum(chunk.rejections.values())
                report.update({"label": "chunks", "total": len(chunks), "done": done, "pairs": pairs, "rejected": rejected})
            states = [f.state for f in futures]
        result = finalize_task(config, store, run_id, endpoints)
    report.done()
    return GenerateSummary(
        run_id=run_id,
        teachers=teacher_label(config),
        limit=config.generation.limit,
        chunks=len(chunks),
        chunks_cached=sum(1 for s in states if s.name == "Cached"),
        summary=result.summary,
        lineage=result.lineage,
        record_files=[str(p) for p in result.record_files],
        run_dir=str(store.run_dir(run_id)),
        store=str(store.root),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _summary_artifact(summary: GenerateSummary) -> None:
    s = summary.summary
    lines = [
        f"# Generation run `{summary.run_id}`",
        "",
        "| | |",
        "|---|---|",
        f"| teachers | {summary.teachers} |",
        f"| limit | {summary.limit if summary.limit is not None else 'all'} |",
        f"| prompts in | {s.prompts_in} |",
        f"| pairs written | {s.records} |",
        f"| rejected | {sum(s.rejections.values())} |",
        f"| requests sent / from cache | {s.requests_sent} / {s.requests_cached} |",
        f"| chunks (skipped as finished) | {summary.chunks} ({summary.chunks_cached}) |",
        "",
    ]
    if s.rejections:
        lines += ["| rejection reason | count |", "|---|---|", *(f"| {k} | {v} |" for k, v in sorted(s.rejections.items())), ""]
    lines.append(f"Records: `{summary.run_dir}/chunks/`")
    create_markdown_artifact("\n".join(lines), key=slug(f"generate-{summary.run_id}"), description=f"generation run {summary.run_id}")
