"""What the rooms hand each other, typed: one model per thing that crosses a room boundary.

- generators  -> GenerationRun (with its GenerationSummary and GenerationLineage)
- annotations -> AnnotationStats, JudgeHumanAgreement
- blending    -> BlendSummary
- validators  -> GateFacts in, GateResult (with its GateChecks) out
- lineage     -> Manifest, RecoverReport
- flows       -> NightlySummary (built from the final manifest by lineage)

Every model forbids unknown keys, so a producer that drifts from the shape a
consumer reads fails where it writes, not three rooms later. Test fakes are
built from these same models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from prefmix.config import Aggregation

Counts = dict[str, dict[str, int]]  # outer key -> inner key -> rows (domain -> source, domain -> teacher)
Verdict = Literal["pass", "warn", "fail"]
BatchStatus = Literal["staged", "published", "quarantined", "overridden"]
PUBLISHED: tuple[BatchStatus, ...] = ("published", "overridden")


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


# generators ----------------------------------------------------------------------
class GenerationSummary(Contract):
    prompts_in: int
    records: int
    rejections: dict[str, int] = Field(default_factory=dict)
    requests_sent: int = 0
    requests_cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_parse_errors: int = 0
    # pairs whose integer judge scores tied and whose expected scores (score-token probabilities) decided
    expected_tie_breaks: int = 0
    # teacher tokens (prompt + completion, rejected prompts included) per accepted pair; and what the same
    # requests cost per pair had integer ties been no pair (generation.tie_break: none)
    tokens_per_pair: float | None = None
    tokens_per_pair_integer: float | None = None
    elapsed_s: float = 0.0

    @property
    def reconciled(self) -> bool:
        return self.prompts_in == self.records + sum(self.rejections.values())


class TeacherRef(Contract):
    name: str
    model: str
    revision: str | None = None
    endpoints: list[str] = Field(default_factory=list)


class ModelRef(Contract):
    name: str
    model: str
    revision: str | None = None


class ContentRef(Contract):
    """A versioned text asset (prompt template, constitution) and the sha256 of its content."""

    id: str
    sha256: str


class GenerationLineage(Contract):
    strategy: str
    teachers: list[TeacherRef]
    judge: ModelRef  # the primary judge, whose verdict decides each pair
    judges: list[ModelRef] = Field(default_factory=list)  # every judge whose readings are in judge_votes, primary first
    vllm_version: str | None = None
    sampling: dict[str, JsonValue]
    template: ContentRef
    constitution: ContentRef | None = None
    fingerprint: str


class GenerationRun(Contract):
    run_id: str
    run_dir: str
    record_files: list[str]
    rejection_files: list[str]
    summary: GenerationSummary
    lineage: GenerationLineage


class SyntheticRun(GenerationLineage):
    """A generation run as a batch's manifest records it."""

    run_id: str
    summary: GenerationSummary
    path: str | None = None


# annotations ---------------------------------------------------------------------
class Agreement(Contract):
    alpha: float | None = None
    percent_agreement: float | None = None
    items: int | None = None
    pairable_items: int | None = None
    judgments: int | None = None
    annotators: int | None = None
    judgments_in_pass: int | None = None
    note: str | None = None


class AnnotatorAccuracy(Contract):
    annotator_id: str
    n_gold: int
    correct: int
    judgments: int
    accuracy: float | None = None
    excluded: bool
    shard: str | None = None


class ExcludedAnnotator(AnnotatorAccuracy):
    vendor: str


class ShardStats(Contract):
    path: str
    sha256: str
    vendor: str
    layout: str
    rows: int
    items_in: int
    items_with_pairs: int
    pairs_out: int
    items_rejected: int
    rejected_by_reason: dict[str, int]
    reconciled: bool
    agreement: Agreement
    mean_pair_agreement: float | None = None
    # rankings
    rankings: int | None = None
    pairs_cut_by_cap: int | None = None
    candidate_pairs_dropped: dict[str, int] | None = None
    # judgments
    adjudicated_pairs: int | None = None
    agreement_before_exclusion: Agreement | None = None
    agreement_non_gold: Agreement | None = None
    per_domain: dict[str, Agreement] | None = None
    per_review_pass: dict[str, Agreement] | None = None
    annotators: list[AnnotatorAccuracy] | None = None
    excluded_annotators: list[str] | None = None
    uncalibrated_annotators: list[str] | None = None
    gold_items: int | None = None


class IngestTotals(Contract):
    shards: int
    rows_in: int
    items_in: int
    items_with_pairs: int
    pairs_out: int
    items_rejected: int
    rejected_by_reason: dict[str, int]
    reconciled: bool
    duplicate_record_ids: int


class OverallAgreement(Agreement):
    excluded_annotators: list[str] = Field(default_factory=list)
    pairs: int = 0
    rejected: int = 0


class DomainStats(Agreement):
    pairs_out: int
    items_rejected: int
    rejected_by_reason: dict[str, int]


class AnnotationStats(Contract):
    """The annotations room's numbers for one ingest: policy, headline, totals, per shard, domain, annotator."""

    policy: Aggregation
    overall: OverallAgreement
    totals: IngestTotals
    shards: list[ShardStats]
    per_domain: dict[str, DomainStats]
    annotators: list[AnnotatorAccuracy]
    excluded_annotators: list[ExcludedAnnotator]

    def headline(self) -> dict[str, JsonValue]:
        o = self.overall
        return {"alpha": o.alpha, "percent_agreement": o.percent_agreement, "excluded_annotators": list(o.excluded_annotators),
                "pairs": o.pairs, "rejected": o.rejected}


class AgreementShare(Contract):
    pairs: int
    judged: int
    unjudged: int
    agree: int
    disagree: int
    share: float | None = None


class JudgeHumanAgreement(AgreementShare):
    """How often the synthetic judge prefers what people preferred (`agreement` = share)."""

    agreement: float | None = None
    unknown_record_ids: int = 0
    per_domain: dict[str, AgreementShare] = Field(default_factory=dict)


# blending ------------------------------------------------------------------------
class DedupCounts(Contract):
    exact_record_id: int
    duplicate_prompt: int


class DedupSummary(DedupCounts):
    within_source: int
    cross_source: int
    by_source: dict[str, DedupCounts]
    prompts_deduplicated: bool


class TeacherCounts(Contract):
    requested: Counts
    achieved: Counts


class BlendSummary(Contract):
    """What a blend asked for and what it wrote. A ratio is a share of output rows."""

    batch_id: str
    ratio_semantics: str = "a ratio is a share of output rows"
    seed: int
    size: int | Literal["all_human"]
    rows: int
    requested: Counts  # domain -> source -> rows
    achieved: Counts
    available: Counts
    by_teacher: TeacherCounts
    by_kind: TeacherCounts  # domain -> kind -> rows, over both sources
    upsampled: Counts
    dedup: DedupSummary
    excluded: dict[str, int]
    input_rows: dict[str, int]
    not_sampled: int
    selected_unique: int
    splits: dict[str, int]
    split_rule: str
    files: list[str]


class BlendResult(Contract):
    files: list[str]  # relative to the output folder: data/train-*.parquet, data/eval-*.parquet
    rows: int
    summary: BlendSummary
    chart: str = "report/composition.png"


# validators ----------------------------------------------------------------------
class GateFacts(Contract):
    """Figures measured elsewhere (annotations, calibration) that the gate asserts."""

    human_agreement: float | None = None
    judge_human: float | None = None


class GateCheck(Contract):
    name: str
    severity: Literal["critical", "warning"]
    success: bool
    observed: JsonValue = None
    expected: str
    message: str
    # A few offending rows (record_id, source, the field and an excerpt), so a person sees what failed.
    samples: list[dict[str, JsonValue]] = Field(default_factory=list)
    suite: str | None = None  # the user GX suite an expectation came from; None for prefmix's own checks


class GateReport(Contract):
    """Report files of a gate run. The gate returns absolute paths; a manifest keeps them relative to the
    batch folder, so its links stay right wherever the batch moves (staging -> batches or quarantine)."""

    data_docs: str | None = None
    summary_png: str
    validation_json: str
    html: str | None = None  # report/report.html: one self-contained file (inline CSS, embedded pictures)

    def relative_to(self, batch_dir: Path) -> "GateReport":
        return self._map(lambda p: Path(p).relative_to(batch_dir) if Path(p).is_absolute() else Path(p))

    def resolved(self, batch_dir: Path) -> "GateReport":
        return self._map(lambda p: Path(batch_dir) / p)

    def _map(self, change: Any) -> "GateReport":
        return GateReport(**{name: (str(change(value)) if value else None) for name, value in self.model_dump().items()})


class GateResult(Contract):
    """The gate's decision. `verdict` and the failed lists are set by validators (the one blocking rule)."""

    verdict: Verdict
    checks: list[GateCheck]
    failed_critical: list[str] = Field(default_factory=list)
    failed_warning: list[str] = Field(default_factory=list)
    report: GateReport

    def check(self, name: str) -> GateCheck:
        return next(c for c in self.checks if c.name == name)

    @property
    def blocks(self) -> bool:
        return self.verdict == "fail"


# lineage -------------------------------------------------------------------------
InputRole = Literal["human_shard", "prompt_set", "synthetic_run", "human_records", "synthetic_records"]


class ManifestInput(Contract):
    role: InputRole
    path: str | None = None
    sha256: str | None = None
    run_id: str | None = None
    layout: str | None = None
    vendor: str | None = None
    rows: int | None = None


class DataFile(Contract):
    path: str  # relative to the batch folder
    sha256: str
    rows: int
    bytes: int


class CodeVersion(Contract):
    git_commit: str | None = None
    git_dirty: bool | None = None
    package_version: str | None = None


class ManifestModel(Contract):
    name: str
    model: str
    revision: str | None = None
    roles: list[str]
    # a launched teacher that prefmix built (tiny or small): its folder, the sha256 of its model files, its weights
    path: str | None = None
    sha256: str | None = None
    weights: str | None = None


class ManifestCounts(Contract):
    requested: Counts
    achieved: Counts
    dedup_removed: DedupSummary
    upsampled: Counts
    excluded: dict[str, int]


class StatusEntry(Contract):
    status: BatchStatus
    at: str
    by: str
    reason: str | None = None


DeliveryKind = Literal["prompts", "human_shard", "trajectories"]
# new: first time these bytes are seen; changed: new bytes under a name that held other bytes before;
# known: ingested before under this name; duplicate: these bytes were ingested before under another name.
DeliveryStatus = Literal["new", "changed", "known", "duplicate"]
NEW_STATUSES: tuple[DeliveryStatus, ...] = ("new", "changed")


class Delivery(Contract):
    """One file found in a landing zone on the night of a version, and what intake made of it."""

    kind: DeliveryKind
    path: str
    sha256: str
    bytes: int
    status: DeliveryStatus
    rows: int | None = None
    vendor: str | None = None
    layout: str | None = None
    previous_sha256: str | None = None  # changed: what the same name held when it was last ingested
    duplicate_of: str | None = None  # duplicate: the name the same bytes were ingested under
    version: int | None = None  # known / duplicate: the version that ingested these bytes
    columns: dict[str, str] = Field(default_factory=dict)  # the zone's column mapping, to read the file again
    mtime_ns: int | None = None  # when it was seen: a file of the same name, size and time is not hashed again

    @property
    def is_new(self) -> bool:
        return self.status in NEW_STATUSES


class PromptRange(Contract):
    """Rows [start, stop) of one prompt delivery."""

    sha256: str
    start: int
    stop: int


class PoolFile(Contract):
    """A file of accepted records in a dataset's pool (content-addressed under pool/; never rewritten)."""

    path: str
    sha256: str
    source: Literal["human", "synthetic"]
    rows: int
    day: str  # the night it entered the pool (dataset.window_days counts from here)
    # agent: trajectory and step pairs derived from agent runs (no generation fingerprint supersedes them)
    kind: Literal["pairs", "agent"] = "pairs"
    deliveries: list[str]  # sha256 of the deliveries its rows come from
    vendor: str | None = None
    run_id: str | None = None
    fingerprint: str | None = None  # synthetic: the generation fingerprint its pairs were made under
    teachers: list[str] = Field(default_factory=list)  # synthetic: teacher and judge names of the run
    coverage: list[PromptRange] = Field(default_factory=list)  # synthetic: the prompt rows its run settled


class Changes(Contract):
    """The rows a version added and removed against the version it was built on (lineage/changes.parquet)."""

    path: str  # relative to the batch folder
    sha256: str
    added: int
    removed: int
    by_reason: dict[str, dict[str, int]]  # added|removed -> reason -> rows


class DatasetVersion(Contract):
    """What makes a batch a version of a dataset: its number, its pool, and what intake and retraction did."""

    name: str
    version: int
    base_version: int | None = None
    day: str
    fingerprint: str | None = None
    window_days: int | None = None
    deliveries: list[Delivery] = Field(default_factory=list)  # every landing-zone file seen that night
    pool: list[PoolFile] = Field(default_factory=list)  # every pool file, kept or not (see excluded)
    prompts: list[Delivery] = Field(default_factory=list)  # every prompt delivery to date (what generation covers)
    retractions: list[str] = Field(default_factory=list)  # ids of the retractions in force
    excluded: dict[str, int] = Field(default_factory=dict)  # pool rows left out, by reason
    retracted_rows: int = 0
    new_prompts: int = 0
    generated_prompts: int = 0
    requests: int = 0
    changes: Changes | None = None
    agent: AgentNight | None = None  # what the agent stage did (agent runs in, rows by kind, counted rejections)

    @property
    def new_deliveries(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.is_new]

    @property
    def skipped_deliveries(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == "duplicate"]


class Manifest(Contract):
    """What a batch is, what it was made from and what happened to it (see lineage/manifest.py)."""

    manifest_version: int
    batch_id: str
    created_at: str
    flow_run_id: str | None = None
    content_hash: str
    rows: int
    files: list[DataFile]
    code_version: CodeVersion
    config: dict[str, JsonValue]  # the resolved config as run, secrets redacted
    inputs: list[ManifestInput]
    synthetic_runs: list[SyntheticRun]
    models: list[ManifestModel]
    counts: ManifestCounts
    blend: BlendSummary
    annotation_stats: AnnotationStats | None = None
    judge_human: JudgeHumanAgreement | None = None
    gate: GateResult | None = None
    dataset: DatasetVersion | None = None
    seal: str
    status_history: list[StatusEntry]

    @property
    def status(self) -> BatchStatus:
        return self.status_history[-1].status

    def status_time(self, *statuses: str) -> str | None:
        times = [s.at for s in self.status_history if s.status in statuses]
        return times[-1] if times else None


class RecoverReport(Contract):
    """What the janitor finished or undid at the start of a run."""

    removed_staging: list[str] = Field(default_factory=list)
    removed_tmp: list[str] = Field(default_factory=list)
    finished_overrides: list[str] = Field(default_factory=list)
    latest: dict[str, str | None] | None = None  # {from, to} when LATEST was moved
    indexed: list[str] = Field(default_factory=list)
    ledger_error: str | None = None
    versions_linked: list[str] = Field(default_factory=list)  # NAME/vN links made for published versions
    dataset_latest: dict[str, str] = Field(default_factory=dict)  # dataset -> version its LATEST was moved to
    reindexed: bool = False  # the ledger had an older layout and was rebuilt from the manifests


RetractionKind = Literal["delivery", "annotator", "vendor", "teacher"]


class Retraction(Contract):
    """A decision to leave rows out of every later version (retractions/<id>.json, indexed by the ledger)."""

    retraction_id: str
    kind: RetractionKind
    value: str
    reason: str
    at: str
    by: str
    dataset: str | None = None  # None: every dataset of the store


# flows ---------------------------------------------------------------------------
class NightlySummary(Contract):
    """The nightly run's answer, read from the batch's final manifest."""

    batch_id: str
    status: BatchStatus
    verdict: Verdict | None
    failed_checks: list[str]
    rows: int
    achieved: Counts
    batch_dir: str
    manifest: str
    report: dict[str, str | None]
    composition: str
    annotation: dict[str, JsonValue]
    judge_human: JudgeHumanAgreement | None = None
    synthetic: list[GenerationSummary]
    recovered: RecoverReport
    store: str
    already_finished: bool = False
    dataset: str | None = None
    version: int | None = None  # the version published (None when quarantined)
    new_deliveries: int = 0
    skipped_deliveries: int = 0  # copies of deliveries ingested before under another name
    new_prompts: int = 0
    generated_prompts: int = 0
    requests: int = 0
    retracted_rows: int = 0
    agent: AgentNight | None = None


class GenerateSummary(Contract):
    """An ad hoc generation run as the `generate` flow reports it."""

    run_id: str
    teachers: str
    limit: int | None = None
    chunks: int
    chunks_cached: int
    summary: GenerationSummary
    lineage: GenerationLineage
    record_files: list[str]
    run_dir: str
    store: str
    finished_at: str


class AdhocBlendSummary(Contract):
    """An ad hoc blend as the `blend` flow reports it (staged, not gated)."""

    batch_id: str
    staged: str
    rows: int
    ratios: dict[str, float]
    achieved: Counts
    human_file: str
    synthetic_files: int
    store: str


# agent (trajectories) --------------------------------------------------------------
AgentFileOrigin = Literal["landing_zone", "rollouts"]


class AgentFile(Contract):
    """One file of agent runs a night took in: a delivery from a landing zone, or tonight's rollouts."""

    path: str
    sha256: str
    format: str  # atif | chat_jsonl | parquet
    trajectories: int
    origin: AgentFileOrigin


class Rollouts(Contract):
    """The tool environment run on a teacher during a night (its file is a delivery of that night)."""

    teacher: str
    model: str
    endpoint: str
    environment: dict[str, JsonValue]  # trajectories.rollout.Environment as run
    fingerprint: str  # environment, teacher model and serving settings: a later night with the same one skips
    file: str
    sha256: str
    attempts: int
    resolved: int
    requests: int
    elapsed_s: float
    reused: bool = False  # an earlier try of the same night had written the file: read again, no requests


class DerivationCounts(Contract):
    """What one derivation made of the agent runs it took in, in numbers that reconcile: every run in is in a row
    or is counted under a reason, trajectories_in == trajectories_in_rows + trajectories_rejected."""

    mode: str
    trajectories_in: int
    rows_out: int
    trajectories_in_rows: int
    trajectories_rejected: int
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    candidate_pairs: int = 0
    candidates_dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict, description="trimming and labelling counts")

    @property
    def reconciled(self) -> bool:
        return self.trajectories_in == self.trajectories_in_rows + self.trajectories_rejected


class AgentDerivation(DerivationCounts):
    """One derivation over a night's runs (the numbers of trajectories.derive.DerivationSummary)."""

    mode: Literal["trajectory", "step"]
    kind: Literal["trajectory_pair", "step_pair"]


class AgentNight(Contract):
    """The agent stage of one night: the files of runs it took in, what each derivation made of them, the rows
    that entered the pool by kind and source, and where the counted rejections are."""

    files: list[AgentFile] = Field(default_factory=list)
    trajectories_in: int = 0
    derivations: list[AgentDerivation] = Field(default_factory=list)
    rows_by_kind: dict[str, int] = Field(default_factory=dict)  # rows derived tonight (before the blend), per kind
    rows_by_source: dict[str, int] = Field(default_factory=dict)
    duplicate_rows: int = 0  # rows both derivations or two files made (same record id): kept once
    rejections: str | None = None  # Parquet: mode, trajectory_id, task_id, origin_uri, origin_row, reason
    rollouts: Rollouts | None = None
    rollouts_skipped: str | None = None  # why no rollouts ran tonight (e.g. their fingerprint is settled)
    fingerprints: list[str] = Field(default_factory=list)  # rollout fingerprints whose runs are in the pool to date

    @property
    def reconciled(self) -> bool:
        return all(d.reconciled and d.trajectories_in == self.trajectories_in for d in self.derivations)

