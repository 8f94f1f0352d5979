"""One night of a dataset, as data: what came in, what still needs generating, and what the next version is made of.

    take_in(config, store)             -> Intake   (reads only: the preflight runs it before the store is touched)
    into_pool(store, intake, day, run) -> new pool files (tonight's vendor deliveries and generation run)
    next_version(...)                  -> VersionPlan (lineage.versions) for the blend
    describe(...)                      -> DatasetVersion for the manifest

The flow (flows/nightly.py) only calls these in order, under the store lock, with the generation and blend steps
between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from prefmix.annotations.ingest import HumanIngest, ingest_shards
from prefmix.config import Config, PromptSet
from prefmix.contract import Changes, DatasetVersion, Delivery, GenerationRun, PoolFile, Retraction
from prefmix.errors import ConfigError, InputError
from prefmix.lineage.deliveries import Survey, prompt_pool, survey
from prefmix.lineage.ledger import read_retractions
from prefmix.lineage.pool import human_file, synthetic_file
from prefmix.lineage.versions import Base, VersionPlan, base_of, in_force, plan_version
from prefmix.store import Store


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
    for prompt_set in found.prompts:  # validates every new prompt file (one-line error naming file and row)
        count = load_prompt_set(prompt_set, config.domains).height
        if count == 0:
            raise InputError(f"{prompt_set.path}: no prompt rows; expected at least one")
        rows[found.sha256()[str(prompt_set.path)]] = count
    deliveries = [d.model_copy(update={"rows": rows.get(d.sha256, d.rows)}) if d.is_new else d for d in found.deliveries]
    tonight = Survey(found.dataset, deliveries, found.prompts, found.shards, found.empty_zones)
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
    return Intake(tonight, base, human, pool, todo, fingerprint, rules, regenerate, deliveries)


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


def into_pool(config: Config, store: Store, intake: Intake, day: str, run: GenerationRun | None) -> list[PoolFile]:
    """Tonight's accepted records as pool files: one per new vendor delivery, one for the generation run."""
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
    return files


def next_version(config: Config, store: Store, intake: Intake, day: str, new_files: list[PoolFile], run_id: str | None) -> VersionPlan:
    window = config.dataset.window_days if config.dataset else None
    return plan_version(store, intake.dataset, day, intake.base, new_files, fingerprint=intake.fingerprint, window_days=window,
                        rules=intake.rules, new_deliveries={d.sha256 for d in intake.deliveries if d.is_new},
                        regenerated_by=run_id if intake.regenerate else None)


def describe(config: Config, intake: Intake, plan: VersionPlan, day: str, run: GenerationRun | None, changes: Changes) -> DatasetVersion:
    """The `dataset` section of the version's manifest."""
    return DatasetVersion(
        name=intake.dataset, version=plan.version, base_version=intake.base.version if intake.base else None, day=day,
        fingerprint=intake.fingerprint, window_days=config.dataset.window_days if config.dataset else None,
        deliveries=intake.deliveries, pool=plan.pool, prompts=intake.prompts, retractions=plan.retractions,
        excluded=plan.excluded, retracted_rows=plan.retracted_rows, new_prompts=intake.new_prompts,
        generated_prompts=run.summary.prompts_in if run else 0, requests=run.summary.requests_sent if run else 0,
        changes=changes,
    )
