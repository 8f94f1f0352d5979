"""The nightly flow: the next version of the config's dataset. Intake (tonight's deliveries, each taken once) ->
generate (only prompts with no pair under the generation fingerprint) -> agent (tonight's agent runs: delivered files
and, with agent.environment, rollouts on the launched teacher; derived into trajectory and step pairs) -> pool ->
blend (every accepted record to date, less retractions) -> gate -> publish version N+1 -> record.

Wiring only: every decision is a room's (intake, pool, version plan and dataset section: lineage.night; the batch
id: lineage.batch; publish or quarantine: the gate's verdict, read by lineage.publish.release; the summary:
lineage.summary).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from typing import TYPE_CHECKING

from prefmix.config import Config, load
from prefmix.contract import GenerationRun, JudgeHumanAgreement, NightlySummary, SyntheticRun
from prefmix.crash import crash_point
from prefmix.errors import ConfigError
from prefmix.flows import progress
from prefmix.flows.steps import (
    add_to_pool,
    agent_rollouts,
    blend_batch,
    calibrate_judge,
    derive_agent_rows,
    gate_batch,
    generate_synthetic,
    publish_batch,
    record_changes,
)
from prefmix.flows.transaction import staged_batch
from prefmix.store import Store

if TYPE_CHECKING:
    from prefmix.lineage.night import Intake


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
    from prefmix.trajectories.night import check as agent_preflight
    from prefmix.validators.policy import severities
    from prefmix.validators.preflight import check as gate_preflight

    config = load(config_path, overrides or [])
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit {limit}: expected a whole number >= 0")
        config.generation.limit = limit
    severities(config.gate)  # an unknown check name, before any generation
    gate_preflight(config)  # suites, eval sets and patterns the gate will need
    agent_preflight(config)  # the agent rows the blend's kind shares ask for are ones the agent section makes
    check_launch(config)
    return config


def preflight(config: Config, regenerate: bool = False) -> "Intake":
    """Everything that can be wrong with the inputs, found before the store is touched (the CLI runs it before
    Prefect starts, the flow again before it takes the store lock): tonight's deliveries are found, hashed and
    classified, the new ones read and validated, and the pending prompts planned (no network, nothing written)."""
    from prefmix.lineage.night import check_inputs, take_in

    intake = take_in(config, Store.at(config.store_root()), regenerate=regenerate, ledger_url=config.lineage.ledger_url)
    check_inputs(config, intake)
    return intake


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:  # outside a flow run
        return None


@flow(name="nightly", flow_run_name="nightly-{run_date}", log_prints=True, validate_parameters=True)
def nightly(config_path: str, overrides: list[str] | None = None, run_date: str | None = None,
            limit: int | None = None, regenerate: bool = False) -> NightlySummary:
    """The next gated version of the config's dataset: tonight's new deliveries in, only new prompts generated."""
    report = progress.reporter(get_run_logger())
    config = configure(config_path, overrides, limit)
    day = check_day(run_date) if run_date else _today()
    return run_nightly(config, day, report, _flow_run_id(), regenerate)


def run_nightly(config: Config, day: str, report: progress.Reporter, flow_run_id: str | None,
                regenerate: bool = False) -> NightlySummary:
    from prefmix.generators.launch import launched_teachers
    from prefmix.lineage.batch import nightly_batch_id
    from prefmix.lineage.events import LineageEmitter, file_dataset
    from prefmix.lineage.manifest import read_manifest
    from prefmix.lineage.night import check_inputs, describe, earlier_agent, generated, next_version, take_in
    from prefmix.trajectories.night import settled
    from prefmix.lineage.publish import recover
    from prefmix.lineage.summary import nightly_summary

    store = Store.at(config.store_root())
    report.stage("intake: find deliveries")
    preflight(config, regenerate)

    with store.lock(f"nightly {day}"):
        recovered = recover(store, ledger_url=config.lineage.ledger_url)
        # Again under the lock: another writer may have published since the preflight.
        intake = take_in(config, store, regenerate=regenerate, ledger_url=config.lineage.ledger_url)
        check_inputs(config, intake)
        crash_point("intake:after-survey")
        run_id = f"nightly-{day}"
        emitter = LineageEmitter(config, store)
        with emitter.run("prefmix.nightly", run_id=flow_run_id) as flow_run:
            parent = flow_run.ref
            new = [file_dataset(d.path, d.sha256) for d in intake.deliveries if d.is_new]
            with emitter.run("prefmix.intake", parent, inputs=new):
                pass

            run: GenerationRun | None = None
            judge_human: JudgeHumanAgreement | None = None
            todo = generated(intake, config.generation.limit)
            with launched_teachers(config, store.run_dir(run_id) / "logs") as endpoints:
                if todo.height:
                    report.stage(f"generate synthetic pairs ({todo.height} new prompts)")
                    prompt_files = sorted({p for p in todo["origin_uri"].unique().to_list()})
                    with emitter.run("prefmix.generate", parent, inputs=[file_dataset(p) for p in prompt_files]) as gen_run:
                        run = generate_synthetic(config, store, run_id, endpoints, report, prompts=intake.pending)
                        gen_run.outputs.extend(file_dataset(f) for f in run.record_files)
                    crash_point("nightly:after-generate")
                if config.human.calibration_sample and intake.human.records.height:
                    report.stage("judge-versus-human calibration")
                    with emitter.run("prefmix.calibrate_judge", parent):
                        judge_human = calibrate_judge(config, intake.human.records, endpoints)
                rolled = None
                done, skipped = settled(config, earlier_agent(intake))
                if not done or (regenerate and config.agent.environment is not None):
                    report.stage(f"agent rollouts ({config.agent.environment.tasks} tasks x {config.agent.environment.attempts})")
                    with emitter.run("prefmix.agent_rollouts", parent) as roll_run:
                        rolled = agent_rollouts(config, endpoints, store.run_dir(run_id) / "agent" / "rollouts.json", report)
                        roll_run.outputs.append(file_dataset(rolled[0].file, rolled[0].sha256))
                    crash_point("nightly:after-rollouts")
                    skipped = None

            agent = None
            if config.agent.enabled:
                report.stage("agent: derive trajectory and step pairs")
                runs_in = [file_dataset(f.path, f.sha256) for f in intake.runs.files]
                with emitter.run("prefmix.agent_derive", parent, inputs=runs_in):
                    agent = derive_agent_rows(config, store, intake, run_id, rolled, skipped)
            new_files = add_to_pool(config, store, intake, day, run, agent)
            crash_point("intake:after-pool")
            plan = next_version(config, store, intake, day, new_files, run.run_id if run else None, agent)
            inputs = [*intake.human.inputs, *plan.inputs]
            batch_id = nightly_batch_id(config, inputs, day)
            finished = store.find_batch(batch_id, staged=False)
            if finished is not None:  # a rerun after this version was published or quarantined (e.g. killed after the rename)
                report.done()
                return nightly_summary(read_manifest(finished), finished, recovered, store, already_finished=True)
            runs = [SyntheticRun(run_id=run.run_id, summary=run.summary, **run.lineage.model_dump())] if run else []

            # A crash (an exception, not a failed verdict) anywhere from here to publish removes the staged files.
            with staged_batch(store, batch_id):
                report.stage(f"blend {intake.dataset} v{plan.version} ({batch_id})")
                blended = [file_dataset(i.path, i.sha256) for i in plan.inputs if i.path]
                with emitter.run("prefmix.blend", parent, inputs=blended):
                    staged, blend = blend_batch(config, store, batch_id, plan.human_files, plan.synthetic_files)
                changes = record_changes(staged, blend, plan)
                crash_point("nightly:after-blend")

                report.stage("gate")
                with emitter.run("prefmix.gate", parent) as gate_run:
                    gate = gate_batch(config, staged, intake.human.report, judge_human)
                    gate_run.run_facets.update(_test_facet(gate))
                crash_point("nightly:after-gate")

                report.stage("quarantine" if gate.blocks else f"publish {intake.dataset} v{plan.version}")
                final_dir = publish_batch(
                    config=config, store=store, batch_id=batch_id, staged=staged, inputs=inputs, synthetic_runs=runs,
                    blend=blend, annotation=intake.human.report, judge_human=judge_human, gate=gate, flow_run_id=flow_run_id,
                    emitter=emitter, parent=parent,
                    dataset=describe(config, intake, plan, day, run, changes, agent.night if agent else None),
                )
        report.done()
        return nightly_summary(read_manifest(final_dir), final_dir, recovered, store)


def _test_facet(gate: object) -> dict[str, object]:
    from prefmix.lineage.events import test_facet

    return {"test": test_facet(gate)}  # type: ignore[arg-type]
