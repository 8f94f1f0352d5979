"""One night of a dataset, as data: what came in, what still needs generating, and what the next version is made of.

    take_in(config, store)             -> Intake   (reads only: the preflight runs it before the store is touched)
    agent_night(...)                   -> tonight's agent rows (delivered runs and rollouts, derived; trajectories.night)
    into_pool(store, intake, day, run) -> new pool files (tonight's vendor deliveries, generation run and agent rows)
    next_version(...)                  -> VersionPlan (lineage.versions) for the blend
    describe(...)                      -> DatasetVersion for the manifest

The flow (flows/nightly.py) only calls these in order, under the store lock, with the generation and blend steps
between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from prefmix.annotations.ingest import HumanIngest, ingest_shards
from prefmix.config import Config, PromptSet
from prefmix.contract import AgentNight, Changes, DatasetVersion, Delivery, GenerationRun, PoolFile, Retraction, Rollouts
from prefmix.errors import ConfigError, InputError
from prefmix.lineage.deliveries import Survey, prompt_pool, survey
from prefmix.lineage.ledger import read_retractions
from prefmix.lineage.pool import agent_files, human_file, synthetic_file
from prefmix.lineage.versions import Base, VersionPlan, base_of, in_force, plan_version
from prefmix.store import Store
from prefmix.trajectories.night import AgentRows, AgentRuns, read_runs


@dataclass
class Intake:
    survey: Survey
    base: Base | None
    human: HumanIngest  # tonight's new vendor deliveries, aggregated
    prompts: list[Delivery]  # every prompt delivery to date (with rows), less retracted ones
    pending: pl.DataFrame  # prompt rows with no pair or rejection under the fingerprint yet
    fingerprint: str | None  # the generation fingerprint (None: generation off)
    rules: list[Retraction]  # retractions in force for this dataset
    regenerate: bool = False
    deliveries: list[Delivery] = field(default_factory=list)  # survey.deliveries with rows filled in
    runs: AgentRuns = field(default_factory=AgentRuns.none)  # tonight's new trajectory deliveries, validated

    @property
    def dataset(self) -> str:
        return self.survey.dataset

    @property
    def new_prompts(self) -> int:
        return sum(d.rows or 0 for d in self.deliveries if d.kind == "prompts" and d.is_new)

    def pool_rows(self, source: str) -> int:
        info = self.base.manifest.dataset if self.base else None
        return sum(f.rows for f in (info.pool if info else []) if f.source == source)


def _retracted_deliveries(rules: list[Retraction]) -> set[str]:
    return {r.value for r in rules if r.kind == "delivery"}


def take_in(config: Config, store: Store, *, regenerate: bool = False, ledger_url: str | None = None) -> Intake:
    """Find tonight's deliveries, validate and aggregate the new ones, and work out which prompts need generating.
    Every bad input is found here, before anything is written."""
    from prefmix.generators.pending import pending
    from prefmix.generators.plan import generation_fingerprint, load_generation_assets
    from prefmix.generators.prompts import load_prompt_set

    found = survey(config, store, ledger_url)
    rules = in_force(read_retractions(store) if store.root.is_dir() else [], found.dataset)
    retracted = _retracted_deliveries(rules)
    human = ingest_shards([s for s in found.shards if found.sha256()[str(s.path)] not in retracted], config.domains,
                          config.human.aggregation)
    rows = {s.sha256: s.rows for s in human.report.shards}
    # every new trajectory delivery, validated (one-line error naming file, run and step)
    runs = read_runs([str(z.path) for z in found.trajectories if found.sha256()[str(z.path)] not in retracted])
    rows.update({f.sha256: f.trajectories for f in runs.files})
    for prompt_set in found.prompts:  # validates every new prompt file (one-line error naming file and row)
        count = load_prompt_set(prompt_set, config.domains).height
        if count == 0:
            raise InputError(f"{prompt_set.path}: no prompt rows; expected at least one")
        rows[found.sha256()[str(prompt_set.path)]] = count
    deliveries = [d.model_copy(update={"rows": rows.get(d.sha256, d.rows)}) if d.is_new else d for d in found.deliveries]
    tonight = Survey(found.dataset, deliveries, found.prompts, found.shards, found.empty_zones, found.trajectories)
    base = base_of(store, found.dataset)
    pool = prompt_pool(base.manifest.dataset if base and base.manifest.dataset else None, tonight, retracted)
    generating = config.generation.enabled and bool(config.prompts)
    if generating and not config.teachers:
        raise ConfigError("teachers: no teachers configured; generation needs at least one")
    fingerprint: str | None = None
    todo = pl.DataFrame(schema={"prompt": pl.String, "domain": pl.String, "origin_uri": pl.String, "origin_sha256": pl.String,
                                "origin_row": pl.Int64})
    if generating and pool:
        fingerprint = generation_fingerprint(config, *load_generation_assets(config))
        covered: dict[str, list[tuple[int, int]]] = {}
        if not regenerate and base and base.manifest.dataset:
            for f in base.manifest.dataset.pool:
                if f.source == "synthetic" and f.fingerprint == fingerprint:
                    for r in f.coverage:
                        covered.setdefault(r.sha256, []).append((r.start, r.stop))
        sets = [(PromptSet(path=d.path, columns=d.columns), d.rows or 0) for d in pool]
        todo = pending(sets, covered, config.domains, {d.path: d.sha256 for d in pool})
    return Intake(tonight, base, human, pool, todo, fingerprint, rules, regenerate, deliveries, runs)


def check_inputs(config: Config, intake: Intake) -> None:
    """A source whose ratio needs rows must have some: in the pool, or in tonight's deliveries."""
    from prefmix.blending.quotas import check_sources, ratios

    available = {"human": intake.pool_rows("human") + intake.human.records.height,
                 "synthetic": intake.pool_rows("synthetic") + intake.pending.height}
    for source, zones in (("human", config.human.shards), ("synthetic", config.prompts)):
        wanting = [d for d in config.domains if ratios(config.blend, d)[source] > 0]
        empty = [z.where for z in zones if z.where in intake.survey.empty_zones]
        if wanting and available[source] == 0 and empty:
            key = "human.shards" if source == "human" else "prompts"
            raise InputError(f"{key}: {empty[0]} matches no file and dataset {intake.dataset!r} has no {source} rows yet, "
                             f"but blend gives {source} a share; drop a delivery there or set its ratio to 0")
    files = {"human": len(intake.human.inputs), "synthetic": len(intake.prompts)}
    check_sources(config.blend, config.domains, available, files)


def generated(intake: Intake, limit: int | None) -> pl.DataFrame:
    """The pending rows tonight's run settles (all, or the first `limit`)."""
    return intake.pending.head(limit) if limit is not None else intake.pending


def into_pool(config: Config, store: Store, intake: Intake, day: str, run: GenerationRun | None,
              agent: AgentRows | None = None) -> list[PoolFile]:
    """Tonight's accepted records as pool files: one per new vendor delivery, one for the generation run, one per
    source of tonight's agent rows."""
    from prefmix.generators.pending import ranges_of

    files: list[PoolFile] = []
    for shard in intake.human.inputs:
        assert shard.sha256 is not None
        records = intake.human.records.filter(pl.col("origin_sha256") == shard.sha256)
        files.append(human_file(store, shard.sha256, shard.vendor or "unknown", records, day))
    if run is not None and intake.fingerprint:
        names = [t.name for t in run.lineage.teachers] + [t.model for t in run.lineage.teachers]
        names += [run.lineage.judge.name, run.lineage.judge.model]
        settled = ranges_of(generated(intake, config.generation.limit))
        files.append(synthetic_file(store, run.run_id, run.record_files, settled, intake.fingerprint, names, day))
    if agent is not None and agent.rows.height:
        rolled = agent.night.rollouts
        teachers = [rolled.teacher, rolled.model] if rolled else []
        files += agent_files(store, agent.rows, [f.sha256 for f in agent.night.files], teachers, day)
    return files


def agent_night(config: Config, store: Store, intake: Intake, run_id: str,
                rolled: tuple[Rollouts, AgentRuns] | None = None, skipped: str | None = None) -> AgentRows | None:
    """Tonight's agent rows: the new trajectory deliveries and tonight's rollouts (unless their file repeats runs the
    pool holds), derived together; the counted rejections are written to the run's agent/ folder. None when the
    config has no agent section."""
    from prefmix.trajectories.night import derive_night, write_rejections

    if not config.agent.enabled:
        return None
    done, runs = rolled if rolled else (None, AgentRuns.none())
    delivery = rollout_delivery(intake, AgentNight(rollouts=done)) if done is not None else None
    fresh = delivery is not None and delivery.is_new
    made = derive_night(config, [intake.runs, runs if fresh else AgentRuns.none()], done if fresh else None, run_id)
    path = write_rejections(made.rejections, store.run_dir(run_id) / "agent" / "rejections.parquet")
    before = earlier_agent(intake)
    fingerprints = sorted({*(before.fingerprints if before else []), *([done.fingerprint] if done else [])})
    if done is not None and not fresh:
        skipped = f"duplicate: the rollouts file repeats runs the pool holds ({done.sha256[:12]})"
    night = made.night.model_copy(update={"rejections": path, "fingerprints": fingerprints, "rollouts": done,
                                          "rollouts_skipped": skipped})
    return AgentRows(made.rows, made.rejections, night)


def earlier_agent(intake: Intake) -> AgentNight | None:
    """The agent section of the version tonight builds on (which rollouts are settled)."""
    info = intake.base.manifest.dataset if intake.base else None
    return info.agent if info else None


def rollout_delivery(intake: Intake, night: AgentNight) -> Delivery | None:
    """Tonight's rollouts file as a delivery of the night: new, or a duplicate of runs the pool already holds."""
    rolled = night.rollouts
    if rolled is None:
        return None
    pooled = {sha for f in (intake.base.manifest.dataset.pool if intake.base and intake.base.manifest.dataset else [])
              for sha in f.deliveries if f.kind == "agent"}
    size = Path(rolled.file).stat().st_size
    base = {"kind": "trajectories", "path": rolled.file, "sha256": rolled.sha256, "bytes": size, "rows": rolled.attempts,
            "vendor": f"rollouts:{rolled.teacher}"}
    if rolled.sha256 in pooled:
        return Delivery(status="duplicate", duplicate_of=rolled.file, **base)  # type: ignore[arg-type]
    return Delivery(status="new", **base)  # type: ignore[arg-type]


def next_version(config: Config, store: Store, intake: Intake, day: str, new_files: list[PoolFile], run_id: str | None,
                 agent: AgentRows | None = None) -> VersionPlan:
    window = config.dataset.window_days if config.dataset else None
    new = {d.sha256 for d in intake.deliveries if d.is_new} | {f.sha256 for f in (agent.night.files if agent else [])}
    return plan_version(store, intake.dataset, day, intake.base, new_files, fingerprint=intake.fingerprint, window_days=window,
                        rules=intake.rules, new_deliveries=new,
                        regenerated_by=run_id if intake.regenerate else None)


def describe(config: Config, intake: Intake, plan: VersionPlan, day: str, run: GenerationRun | None, changes: Changes,
             agent: AgentNight | None = None) -> DatasetVersion:
    """The `dataset` section of the version's manifest (tonight's rollouts file is one of the night's deliveries)."""
    extra = rollout_delivery(intake, agent) if agent is not None else None
    deliveries = [*intake.deliveries, *([extra] if extra else [])]
    return DatasetVersion(
        name=intake.dataset, version=plan.version, base_version=intake.base.version if intake.base else None, day=day,
        fingerprint=intake.fingerprint, window_days=config.dataset.window_days if config.dataset else None,
        deliveries=deliveries, pool=plan.pool, prompts=intake.prompts, retractions=plan.retractions,
        excluded=plan.excluded, retracted_rows=plan.retracted_rows, new_prompts=intake.new_prompts,
        generated_prompts=run.summary.prompts_in if run else 0, requests=run.summary.requests_sent if run else 0,
        changes=changes, agent=agent,
    )
