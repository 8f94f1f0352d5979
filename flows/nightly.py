"""The nightly flow: ingest human shards, generate synthetic pairs, blend, gate, publish, record.

Wiring only: every decision is a room's (the batch id and the input manifest:
lineage.batch and lineage.manifest; publish or quarantine: the gate's verdict,
read by lineage.publish.release; the summary: lineage.summary).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from prefmix.annotations.ingest import HumanIngest
from prefmix.config import Config, load
from prefmix.contract import GenerationRun, JudgeHumanAgreement, NightlySummary, SyntheticRun
from prefmix.crash import crash_point
from prefmix.errors import ConfigError
from prefmix.flows import progress
from prefmix.flows.steps import (
    blend_batch,
    calibrate_judge,
    gate_batch,
    generate_synthetic,
    publish_batch,
    write_human_records,
)
from prefmix.flows.transaction import staged_batch
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


def configure(config_path: str, overrides: list[str] | None, limit: int | None) -> Config:
    """The config of one nightly run: file + overrides + the run's limit; every config mistake is found here."""
    from prefmix.generators.launch import check_launch
    from prefmix.validators.policy import severities

    config = load(config_path, overrides or [])
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit {limit}: expected a whole number >= 0")
        config.generation.limit = limit
    severities(config.gate)  # an unknown check name, before any generation
    check_launch(config)
    return config


@dataclass
class Preflight:
    human: HumanIngest
    prompts: int


def preflight(config: Config) -> Preflight:
    """Everything that can be wrong with the inputs, found before the store is touched (the CLI runs it
    before Prefect starts, the flow again before it takes the store lock)."""
    from prefmix.annotations.ingest import ingest
    from prefmix.blending.quotas import check_sources
    from prefmix.generators.plan import build_plan

    human = ingest(config)
    # The plan reads prompts, templates and constitution (no network).
    plan = build_plan(config, "preflight") if config.generation.enabled and config.prompts else None
    prompts = plan.prompts.height if plan is not None else 0
    check_sources(config.blend, config.domains, {"human": human.records.height, "synthetic": prompts},
                  {"human": len(config.human.shards), "synthetic": len(config.prompts)})
    return Preflight(human, prompts)


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:  # outside a flow run
        return None


@flow(name="nightly", flow_run_name="nightly-{run_date}", log_prints=True, validate_parameters=True)
def nightly(config_path: str, overrides: list[str] | None = None, run_date: str | None = None,
            limit: int | None = None) -> NightlySummary:
    """One gated, versioned preference batch from today's prompts and the newest human shards."""
    report = progress.reporter(get_run_logger())
    config = configure(config_path, overrides, limit)
    day = check_day(run_date) if run_date else _today()
    return run_nightly(config, day, report, _flow_run_id())


def run_nightly(config: Config, day: str, report: progress.Reporter, flow_run_id: str | None) -> NightlySummary:
    from prefmix.generators.launch import launched_teachers
    from prefmix.lineage.batch import nightly_batch_id
    from prefmix.lineage.events import LineageEmitter, file_dataset
    from prefmix.lineage.manifest import input_entries, read_manifest
    from prefmix.lineage.publish import recover
    from prefmix.lineage.summary import nightly_summary

    store = Store.at(config.store_root())
    report.stage("ingest human shards")
    checked = preflight(config)
    human = checked.human

    with store.lock(f"nightly {day}"):
        recovered = recover(store, ledger_url=config.lineage.ledger_url)
        run_id = f"nightly-{day}"
        emitter = LineageEmitter(config, store)
        with emitter.run("prefmix.nightly", run_id=flow_run_id) as flow_run:
            parent = flow_run.ref
            with emitter.run("prefmix.ingest_human", parent, inputs=[file_dataset(i.path, i.sha256) for i in human.inputs if i.path]):
                pass

            generated: GenerationRun | None = None
            judge_human: JudgeHumanAgreement | None = None
            with launched_teachers(config, store.run_dir(run_id) / "logs") as endpoints:
                if checked.prompts:
                    report.stage(f"generate synthetic pairs ({checked.prompts} prompts)")
                    with emitter.run("prefmix.generate", parent, inputs=[file_dataset(p.path) for p in config.prompts]) as gen_run:
                        generated = generate_synthetic(config, store, run_id, endpoints, report)
                        gen_run.outputs.extend(file_dataset(f) for f in generated.record_files)
                    crash_point("nightly:after-generate")
                if config.human.calibration_sample and human.records.height:
                    report.stage("judge-versus-human calibration")
                    with emitter.run("prefmix.calibrate_judge", parent):
                        judge_human = calibrate_judge(config, human.records, endpoints)

            synthetic_files = list(generated.record_files) if generated else []
            runs = [SyntheticRun(run_id=generated.run_id, summary=generated.summary, **generated.lineage.model_dump())] if generated else []
            human_file = write_human_records(store, run_id, human.records)
            inputs = input_entries(config, human.inputs, human_file, synthetic_files)
            batch_id = nightly_batch_id(config, inputs, day)
            finished = store.find_batch(batch_id, staged=False)
            if finished is not None:  # a rerun after this batch was published or quarantined (e.g. killed after the rename)
                report.done()
                return nightly_summary(read_manifest(finished), finished, recovered, store, already_finished=True)

            # A crash (an exception, not a failed verdict) anywhere from here to publish removes the staged files.
            with staged_batch(store, batch_id):
                report.stage(f"blend batch {batch_id}")
                blended = [file_dataset(i.path, i.sha256) for i in inputs if i.path and i.role in ("human_records", "synthetic_records")]
                with emitter.run("prefmix.blend", parent, inputs=blended):
                    staged, blend = blend_batch(config, store, batch_id, [human_file], synthetic_files)
                crash_point("nightly:after-blend")

                report.stage("gate")
                with emitter.run("prefmix.gate", parent) as gate_run:
                    gate = gate_batch(config, staged, human.report, judge_human)
                    gate_run.run_facets.update(_test_facet(gate))
                crash_point("nightly:after-gate")

                report.stage("quarantine" if gate.blocks else "publish")
                final_dir = publish_batch(
                    config=config, store=store, batch_id=batch_id, staged=staged, inputs=inputs, synthetic_runs=runs,
                    blend=blend, annotation=human.report, judge_human=judge_human, gate=gate, flow_run_id=flow_run_id,
                    emitter=emitter, parent=parent,
                )
        report.done()
        return nightly_summary(read_manifest(final_dir), final_dir, recovered, store)


def _test_facet(gate: object) -> dict[str, object]:
    from prefmix.lineage.events import test_facet

    return {"test": test_facet(gate)}  # type: ignore[arg-type]
