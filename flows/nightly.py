"""The nightly flow: ingest human shards, generate synthetic pairs, blend, gate, publish, record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from prefmix.flows import progress
from prefmix.flows.transaction import staged_batch
from prefmix.flows.steps import (
    blend_batch,
    calibrate_judge,
    gate_batch,
    generate_synthetic,
    ingest_human,
    publish_or_quarantine,
    write_human_records,
)
from prefmix.config import Config, load
from prefmix.crash import crash_point
from prefmix.errors import ConfigError
from prefmix.store import Store


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def check_day(day: str) -> str:
    """A run date is a real calendar date, YYYY-MM-DD (it names the run and its batch)."""
    try:
        parsed: str | None = dt.date.fromisoformat(day).isoformat()
    except ValueError:
        parsed = None
    if parsed != day:  # fromisoformat also takes 20261126 and week dates; the run id wants one spelling
        raise ConfigError(f"--date {day[:40]!r}: expected a calendar date YYYY-MM-DD")
    return day


def batch_id_for(config: Config, input_hashes: list[str], day: str) -> str:
    """Same day, same config, same inputs -> same batch id (a rerun finds its own batch)."""
    payload = json.dumps({"config": config.redacted(), "inputs": sorted(input_hashes)}, sort_keys=True)
    return f"b{day.replace('-', '')}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:  # outside a flow run
        return None


@flow(name="nightly", flow_run_name="nightly-{run_date}", log_prints=True, validate_parameters=True)
def nightly(config_path: str, overrides: list[str] | None = None, run_date: str | None = None,
            limit: int | None = None) -> dict[str, Any]:
    """One gated, versioned preference batch from today's prompts and the newest human shards."""
    logger = get_run_logger()
    report = progress.reporter(logger)
    config = load(config_path, overrides or [])
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit {limit}: expected a number >= 0")
        config.generation.limit = limit
    day = check_day(run_date) if run_date else _today()
    return run_nightly(config, day, report, _flow_run_id())


def run_nightly(config: Config, day: str, report: progress.Reporter, flow_run_id: str | None) -> dict[str, Any]:
    store = Store.at(config.store)
    ledger_url = config.lineage.ledger_url

    # Everything that can be wrong with the inputs is found before the store is touched.
    report.stage("ingest human shards")
    human = ingest_human(config)

    from prefmix.generators.plan import build_plan

    # The plan reads prompts, templates and constitution (no network), so a bad one fails before the lock.
    plan = build_plan(config, f"nightly-{day}") if config.generation.enabled and config.prompts else None
    prompts = plan.prompts if plan is not None else None

    from prefmix.generators.launch import launched_teachers
    from prefmix.lineage.events import LineageEmitter, file_dataset
    from prefmix.lineage.manifest import read_manifest
    from prefmix.lineage.publish import recover

    with store.lock(f"nightly {day}"):
        recovered = recover(store, ledger_url=ledger_url)
        run_id = f"nightly-{day}"
        emitter = LineageEmitter(config, store)
        with emitter.run("prefmix.nightly", run_id=flow_run_id) as flow_run:
            parent = flow_run.ref
            with emitter.run("prefmix.ingest_human", parent,
                             inputs=[file_dataset(i["path"], i["sha256"]) for i in human.inputs]):
                pass

            synthetic_runs: list[dict[str, Any]] = []
            synthetic_files: list[str] = []
            judge_human: dict[str, Any] | None = None
            with launched_teachers(config, store.run_dir(run_id) / "logs") as endpoints:
                if prompts is not None and len(prompts):
                    report.stage(f"generate synthetic pairs ({len(prompts)} prompts)")
                    with emitter.run("prefmix.generate", parent,
                                     inputs=[file_dataset(p.path) for p in config.prompts]) as gen_run:
                        gen = generate_synthetic(config, store, run_id, endpoints, report)
                        gen_run.outputs.extend(file_dataset(f) for f in gen.record_files)
                    synthetic_runs.append({"run_id": gen.run_id, **gen.lineage, "summary": gen.summary})
                    synthetic_files = list(gen.record_files)
                    crash_point("nightly:after-generate")
                if config.human.calibration_sample and len(human.records):
                    report.stage("judge-versus-human calibration")
                    with emitter.run("prefmix.calibrate_judge", parent):
                        judge_human = calibrate_judge(config, human.records, endpoints)

            human_file = write_human_records(store, run_id, human.records)
            inputs = _inputs(config, human, human_file, synthetic_files)
            batch_id = batch_id_for(config, [i["sha256"] for i in inputs], day)
            finished = _finished(store, batch_id)
            if finished is not None:  # a rerun after this batch was published or quarantined (e.g. killed after the rename)
                report.done()
                return _finished_summary(finished, human.stats, judge_human, synthetic_runs, recovered, store)

            # A crash (an exception, not a failed verdict) anywhere from here to publish removes the staged files.
            with staged_batch(store, batch_id):
                report.stage(f"blend batch {batch_id}")
                with emitter.run("prefmix.blend", parent,
                                 inputs=[file_dataset(i["path"], i["sha256"]) for i in inputs
                                         if i["role"] in ("human_records", "synthetic_records")]):
                    staged, blend_result = blend_batch(config, store, batch_id, [human_file], synthetic_files)
                crash_point("nightly:after-blend")

                report.stage("gate")
                with emitter.run("prefmix.gate", parent) as gate_run:
                    gate = gate_batch(config, staged, human.stats, judge_human)
                    gate_run.run_facets.update(_test_facet(gate))
                crash_point("nightly:after-gate")

                report.stage("publish" if gate.verdict != "fail" else "quarantine")
                final_dir = publish_or_quarantine(
                    config=config, store=store, batch_id=batch_id, staged=staged, inputs=inputs,
                    synthetic_runs=synthetic_runs, blend_summary=blend_result.summary, annotation_stats=human.stats,
                    judge_human=judge_human, gate=gate, flow_run_id=flow_run_id, emitter=emitter, parent=parent,
                )
        manifest = read_manifest(final_dir)
        report.done()
        return {
            "batch_id": batch_id,
            "status": manifest["status_history"][-1]["status"],
            "verdict": gate.verdict,
            "failed_checks": [*gate.failed_critical, *gate.failed_warning],
            "rows": blend_result.rows,
            "achieved": blend_result.summary.get("achieved"),
            "batch_dir": str(final_dir),
            "manifest": str(Path(final_dir) / "manifest.json"),
            "report": _moved(gate.report.model_dump(), staged, Path(final_dir)),
            "composition": str(Path(final_dir) / "report" / "composition.png"),
            "annotation": _annotation_headline(human.stats),
            "judge_human": judge_human,
            "synthetic": [run["summary"] for run in synthetic_runs],
            "recovered": recovered,
            "store": str(store.root),
        }


def _finished(store: Store, batch_id: str) -> Path | None:
    for place in (store.batch_dir(batch_id), store.quarantine(batch_id)):
        if (place / "manifest.json").exists():
            return place
    return None


def _finished_summary(final_dir: Path, annotation_stats: dict[str, Any], judge_human: dict[str, Any] | None,
                      synthetic_runs: list[dict[str, Any]], recovered: dict[str, Any], store: Store) -> dict[str, Any]:
    """The run summary of a batch an earlier run of the same day already finished, read from its manifest."""
    from prefmix.lineage.manifest import read_manifest

    manifest = read_manifest(final_dir)
    gate, blend = manifest.get("gate") or {}, manifest.get("blend") or {}
    staged = store.staging(manifest["batch_id"])
    return {
        "batch_id": manifest["batch_id"],
        "status": manifest["status_history"][-1]["status"],
        "verdict": gate.get("verdict"),
        "failed_checks": [*gate.get("failed_critical", []), *gate.get("failed_warning", [])],
        "rows": blend.get("rows", manifest.get("rows")),
        "achieved": blend.get("achieved"),
        "batch_dir": str(final_dir),
        "manifest": str(final_dir / "manifest.json"),
        "report": _moved(gate.get("report") or {}, staged, final_dir),
        "composition": str(final_dir / "report" / "composition.png"),
        "annotation": _annotation_headline(annotation_stats),
        "judge_human": judge_human,
        "synthetic": [run["summary"] for run in synthetic_runs],
        "recovered": recovered,
        "store": str(store.root),
        "already_finished": True,
    }


def _test_facet(gate: Any) -> dict[str, Any]:
    from prefmix.lineage.events import test_facet

    return {"test": test_facet(gate.model_dump(mode="json"))}


def _moved(report: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """Report paths written while staged, as they are after the batch moved."""
    return {k: (str(new / Path(v).relative_to(old)) if v and Path(v).is_relative_to(old) else v)
            for k, v in report.items()}


def _inputs(config: Config, human: Any, human_file: str, synthetic_files: list[str]) -> list[dict[str, Any]]:
    from prefmix.store import sha256_file

    inputs: list[dict[str, Any]] = [{"role": "human_shard", **item} for item in human.inputs]
    for prompt_set in config.prompts:
        inputs.append({"role": "prompt_set", "path": prompt_set.path, "sha256": sha256_file(prompt_set.path)})
    inputs.append({"role": "human_records", "path": human_file, "sha256": sha256_file(human_file)})
    for path in synthetic_files:
        inputs.append({"role": "synthetic_records", "path": path, "sha256": sha256_file(path)})
    return inputs


def _annotation_headline(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("alpha", "percent_agreement", "excluded_annotators", "pairs", "rejected")
    overall = stats.get("overall", stats)
    return {k: overall[k] for k in keys if k in overall}
