"""One YAML file -> a typed, validated config tree.

A ratio is a share of output rows. `blend.ratios` gives the share of each
source (human, synthetic) in the whole batch; `blend.domain_ratios` overrides
it for one domain; `blend.teacher_shares` splits the synthetic rows of every
domain between teachers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefmix.errors import ConfigError
from prefmix.records import KINDS, SOURCES
from prefmix.yamlio import parse_yaml, read_yaml

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Severity = Literal["critical", "warning", "off"]
DEFAULT_DOMAINS = ["general", "finance", "medicine", "law"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LandingZone(Model):
    """Where deliveries are: one file (`path`), every *.parquet of a folder (`path` that is a directory), or a
    `glob` (e.g. /data/vendors/acme/*.parquet). Each file found is a delivery, identified by its sha256."""

    FOLDER_GLOBS: ClassVar[tuple[str, ...]] = ("*.parquet",)  # the files of a `path` that is a folder

    path: str | None = None
    glob: str | None = None

    @model_validator(mode="after")
    def _path_or_glob(self) -> "LandingZone":
        if (self.path is None) == (self.glob is None):
            raise ValueError("needs exactly one of 'path' (a file or a folder) or 'glob'")
        return self

    @property
    def where(self) -> str:
        return self.glob if self.glob is not None else str(self.path)


class PromptSet(LandingZone):
    """Parquet prompt files (columns: prompt, domain)."""

    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> column name in the file")


class HumanShard(LandingZone):
    layout: Literal["pairs", "rankings", "judgments"] = "pairs"
    vendor: str = "unknown"
    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> vendor column name")


class Aggregation(Model):
    min_annotators: int = Field(1, ge=1)
    min_agreement: Fraction = 0.5
    min_gold_accuracy: Fraction = 0.0
    ranking_pairs: Literal["best_worst", "all"] = "best_worst"
    max_pairs_per_ranking: int = Field(10, ge=1)


class Limits(Model):
    """Longest texts ingest takes; a longer prompt or response is a counted rejection (prompt_too_long,
    response_too_long), never an accepted row or an error."""

    max_prompt_chars: int = Field(100_000, ge=1)
    max_response_chars: int = Field(100_000, ge=1)


class Human(Model):
    shards: list[HumanShard] = Field(default_factory=list)
    aggregation: Aggregation = Field(default_factory=Aggregation)
    limits: Limits = Field(default_factory=Limits)
    calibration_sample: int = Field(200, ge=0, description="human pairs the synthetic judge re-judges per run")


class Launch(Model):
    """Serve a local model directory with vLLM for the duration of the run. A teacher with `endpoints` as well
    is already served there (e.g. by `prefmix teacher serve`): nothing is started, but the manifest still names
    the folder (and, for a built teacher, the sha256 of its files) and the fingerprint its serving settings.

    Serving defaults depend on what is served (see generators/launch.py and docs/teachers.md): the small real
    teacher runs in bfloat16 where the CPU computes it natively (AVX-512-BF16, AMX), else in float32 (an AVX2 CPU
    ran bf16 matmuls ~6.6x slower), with a 3 GiB KV cache and
    without torch.compile (-O0: start-up ~80 s instead of 250-510 s, which a short run never wins back)."""

    model_dir: str | None = None
    tiny: bool = Field(False, description="build the tiny offline teacher (random weights) into model_dir first")
    small: bool = Field(False, description="build the small real teacher (SmolLM2-135M-Instruct) into model_dir first")
    seed: int = 0
    port: int = 0
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = Field(
        None, description="vLLM --dtype (default: bfloat16; float32 for the small teacher on a CPU without native bf16)")
    kv_cache_gb: float | None = Field(
        None, gt=0, description="VLLM_CPU_KVCACHE_SPACE in GiB (default: 3 for the small teacher, 1 otherwise)")
    optimization_level: Literal[0, 1, 2, 3] | None = Field(
        None, description="vLLM -O level; 0 = no torch.compile (default: 0 for the small teacher, vLLM's own otherwise)")
    startup_timeout_s: float = Field(900.0, gt=0, description="seconds the server may take to become ready")

    @model_validator(mode="after")
    def _one_builder(self) -> "Launch":
        if self.tiny and self.small:
            raise ValueError("'tiny' and 'small' are exclusive: one model folder holds one teacher")
        return self


class Teacher(Model):
    name: str
    model: str = Field(..., description="served model name sent in requests")
    revision: str | None = None
    endpoints: list[str] = Field(default_factory=list)
    launch: Launch | None = None
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    api_key_secret: str | None = Field(None, description="Prefect Secret block name holding the API key")
    max_in_flight: int = Field(128, ge=1)
    timeout_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _endpoint_or_launch(self) -> "Teacher":
        if not self.endpoints and self.launch is None:
            raise ValueError("needs 'endpoints' or 'launch'")
        return self


class Sampling(Model):
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(64, ge=1)
    seed: int | None = None


class Retry(Model):
    max_attempts: int = Field(5, ge=1)
    base_delay_s: float = Field(0.2, ge=0.0)
    max_delay_s: float = Field(10.0, ge=0.0)


class ErrorBudget(Model):
    window: int = Field(200, ge=1)
    max_error_rate: Fraction = 0.5


class Generation(Model):
    enabled: bool = True
    strategy: Literal["pointwise", "pairwise", "constitutional"] = "pointwise"
    teachers: list[str] = Field(default_factory=list, description="teacher names that write candidates (default: all)")
    judge: str | None = Field(None, description="teacher name that judges (default: the first teacher)")
    samples_per_prompt: int = Field(2, ge=1)
    sampling: Sampling = Field(default_factory=Sampling)
    judge_max_tokens: int = Field(48, ge=8)
    judge_temperature: float | None = Field(
        None, ge=0.0, description="judge sampling temperature (default: sampling.temperature); 0 = greedy judge"
    )
    min_margin: float = Field(1.0, ge=0.0)
    judges: list[str] = Field(
        default_factory=list,
        description="teacher names that judge every pair (votes in generation.judge_votes); the pair is decided by the "
        "primary judge (`judge`, else the first of these, else the first teacher)")
    truncated: Literal["reject", "keep"] = Field(
        "reject", description="a candidate cut at max_tokens may become chosen only with 'keep'; else the prompt is "
        "rejected with reason 'truncated'")
    tie_break: Literal["expected", "none"] = Field(
        "expected", description="pointwise: integer ties broken by the judge's expected score (score-token "
        "probabilities, G-Eval style); 'none' = a tie is no pair")
    expected_margin: float = Field(
        0.1, ge=0.0, description="smallest expected-score gap that breaks an integer tie (min_margin is for integers)")
    template: str = "default"
    constitution: str | None = None
    limit: int | None = Field(None, ge=0)
    chunk_size: int = Field(256, ge=1)
    retry: Retry = Field(default_factory=Retry)
    error_budget: ErrorBudget = Field(default_factory=ErrorBudget)
    max_prompt_chars: int = Field(4000, ge=1)


class Upsample(Model):
    allowed: bool = Field(False, description="let a cell short of rows repeat rows instead of failing")
    max_repeats: int = Field(1, ge=1, description="most copies of one row in the output (1: no repetition)")


class Dedup(Model):
    prompts: bool = Field(True, description="also drop pairs whose normalized prompt was seen (human wins)")


class Blend(Model):
    """How to mix. A ratio is a share of OUTPUT ROWS: not a sampling probability, a share of a source, or of tokens."""

    ratios: dict[str, Fraction] = Field(
        default_factory=lambda: {"human": 0.7, "synthetic": 0.3},
        description="share of each domain's output rows per source (human, synthetic); sums to 1",
    )
    domain_ratios: dict[str, dict[str, Fraction]] = Field(
        default_factory=dict, description="per-domain replacement of `ratios`, e.g. medicine: {human: 0.9, synthetic: 0.1}"
    )
    teacher_shares: dict[str, Fraction] = Field(
        default_factory=dict, description="share of each domain's synthetic single-turn output rows per teacher; sums to 1"
    )
    kind_shares: dict[str, dict[str, Fraction]] = Field(
        default_factory=dict,
        description="per source, share of its output rows per kind (single_turn, trajectory_pair, step_pair); "
        "sums to 1; a source not listed takes its rows of any kind",
    )
    domain_kind_shares: dict[str, dict[str, dict[str, Fraction]]] = Field(
        default_factory=dict,
        description="per-domain replacement of `kind_shares`, e.g. general: {synthetic: {single_turn: 0.5, step_pair: 0.5}} "
        "(agent rows are of one domain: agent.rules.domain)",
    )
    size: int | Literal["all_human"] = Field(
        "all_human", description="output rows, or 'all_human': every eligible human row plus synthetic rows to match the ratio"
    )
    domain_shares: dict[str, Fraction] = Field(
        default_factory=dict, description="share of output rows per domain when size is a number (default: as available)"
    )
    upsample: Upsample = Field(default_factory=Upsample)
    dedup: Dedup = Field(default_factory=Dedup)
    eval_fraction: Fraction = Field(0.05, description="share of prompts (by a hash of the normalized prompt) that go to eval")
    shard_rows: int = Field(100_000, ge=1, description="rows per output Parquet shard (the last holds the rest)")

    @field_validator("ratios", "teacher_shares", "domain_shares")
    @classmethod
    def _sums_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_shares(value)

    @field_validator("ratios")
    @classmethod
    def _known_sources(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_sources(value)

    @field_validator("domain_ratios")
    @classmethod
    def _each_domain_sums_to_one(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for shares in value.values():
            _check_sources(shares)
            _check_shares(shares)
        return value

    @field_validator("kind_shares")
    @classmethod
    def _kinds_per_source(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_kinds(value)

    @field_validator("domain_kind_shares")
    @classmethod
    def _kinds_per_domain(cls, value: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
        for domain, per_source in value.items():
            try:
                _check_kinds(per_source)
            except ValueError as exc:
                raise ValueError(f"{domain}: {exc}") from None
        return value

    def kind_shares_for(self, domain: str) -> dict[str, dict[str, float]]:
        """source -> kind -> share in one domain (`domain_kind_shares` replaces `kind_shares` for its domains)."""
        return self.domain_kind_shares.get(domain, self.kind_shares)

    def ratios_for(self, domain: str) -> dict[str, float]:
        shares = {source: 0.0 for source in SOURCES}
        shares.update(self.domain_ratios.get(domain, self.ratios))
        return shares


def _check_shares(value: dict[str, float]) -> dict[str, float]:
    if value and not math.isclose(sum(value.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"shares must sum to 1, got {sum(value.values()):g}")
    return value


def _check_kinds(value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    _check_sources(value)
    for shares in value.values():
        unknown = sorted(set(shares) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}, expected one of {', '.join(map(repr, KINDS))}")
        _check_shares(shares)
    return value


def _check_sources(value: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(value) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}, expected one of {', '.join(map(repr, SOURCES))}")
    return value


class Repetition(Model):
    """A chosen text is repetitive when more than `max_rep` of its word n-grams repeat an earlier one
    (seq-rep-n); the check fails when more than `max_share` of rows are."""

    ngram: int = Field(4, ge=1, le=16)
    max_rep: Fraction = 0.5
    max_share: Fraction = 0.02


class Echo(Model):
    """A chosen text that contains its whole prompt (prompts of at least `min_prompt_chars`)."""

    min_prompt_chars: int = Field(24, ge=1)
    max_share: Fraction = 0.02


class Refusal(Model):
    """A chosen text whose first `head_chars` characters match a refusal pattern (case-insensitive regexes)."""

    patterns: list[str] = Field(default_factory=list, description="extra regexes, added to the built-in list")
    builtin: bool = Field(True, description="use prefmix's built-in English refusal phrases")
    head_chars: int = Field(300, ge=1)
    max_share: Fraction = 0.05

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        import re

        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns[{index}]: {pattern!r} is not a regular expression ({exc})") from None
        return value


class LengthBias(Model):
    """Per source, mean chosen length / mean rejected length (or its inverse) must stay within max_ratio."""

    max_ratio: float = Field(1.5, ge=1.0)


class NearDuplicates(Model):
    """MinHash over word shingles of prompts: a prompt near another (estimated Jaccard >= threshold) from
    another source in the batch, or new and near a prompt of an earlier published batch."""

    threshold: Fraction = 0.7
    shingle: int = Field(3, ge=1, le=8, description="words per shingle")
    max_share: Fraction = 0.01
    earlier_batches: bool = Field(True, description="also compare new prompts with earlier published batches")


class Contamination(Model):
    """Prompts sharing a word n-gram (13 by default) with a prompt of a listed eval set."""

    eval_sets: list[str] = Field(default_factory=list, description="Parquet or JSONL files with a `prompt` column/key")
    ngram: int = Field(13, ge=4, le=50)
    max_share: Fraction = 0.0


class BenchmarkTasks(Model):
    """Task ids of benchmarks that must stay out of training data: listed here and/or in files (.txt: one id a line,
    .json: a list of ids, .jsonl: objects with a `task_id` (or `instance_id`), .parquet: a `task_id` column)."""

    ids: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)


class ChatTemplate(Model):
    """chat_template_prefix: the rendered prompt must be a prefix of the rendered prompt + chosen (and + rejected)
    under the teacher's chat template (the tokenizer in the launched teacher's model_dir)."""

    teacher: str | None = Field(None, description="whose template (default: agent.teacher, else the first teacher with a model_dir)")
    max_rows: int = Field(20_000, ge=1, description="rows rendered at most (beyond: the rows with the lowest record_id)")


class Gate(Model):
    share_tolerance: Fraction = 0.02
    min_rows: int = Field(1, ge=0)
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(20_000, ge=1)
    score_min: float = 0.0
    score_max: float = 10.0
    min_margin: float = 0.0
    min_agreement: Fraction = 0.0
    min_judge_human: Fraction = 0.0
    max_pii_share: Fraction = 0.01
    max_truncated_share: Fraction = Field(0.0, description="share of rows whose chosen stopped at max_tokens")
    repetition: Repetition = Field(default_factory=Repetition)
    echo: Echo = Field(default_factory=Echo)
    refusal: Refusal = Field(default_factory=Refusal)
    length_bias: LengthBias = Field(default_factory=LengthBias)
    near_duplicates: NearDuplicates = Field(default_factory=NearDuplicates)
    contamination: Contamination = Field(default_factory=Contamination)
    benchmark_tasks: BenchmarkTasks = Field(default_factory=BenchmarkTasks, description="with agent.benchmark_tasks: benchmark_overlap")
    chat_template: ChatTemplate = Field(default_factory=ChatTemplate)
    suites: list[str] = Field(default_factory=list, description="Great Expectations suite JSON files run on the rows")
    suite_severity: dict[str, Severity] = Field(
        default_factory=dict, description="suite name or expectation id -> critical | warning | off (wins over the suite)"
    )
    severity: dict[str, Severity] = Field(default_factory=dict, description="check name -> critical | warning | off")
    data_docs: bool = True
    samples: int = Field(5, ge=0, le=100, description="sample rows kept per failed check")


class OpenLineage(Model):
    file: bool = True
    http_url: str | None = None
    namespace: str = "prefmix"


class Lineage(Model):
    ledger_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the store")
    openlineage: OpenLineage = Field(default_factory=OpenLineage)


# -- routing: which synthetic pairs go to people (issue 16; read by prefmix.routing) -------------------------


class RouteBudget(Model):
    """How big one queue is: `tasks` (a count of tasks, gold included), `share` (that count as a share of the
    candidate pairs) or `money` (the largest queue whose labels cost at most this, at `routing.prices`)."""

    tasks: int | None = Field(None, ge=0)
    share: Fraction | None = None
    money: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> "RouteBudget":
        given = [name for name in ("tasks", "share", "money") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("needs exactly one of 'tasks', 'share' or 'money'")
        return self


class RouteSignals(Model):
    """Where each doubt signal saturates at 1 (see docs/routing.md)."""

    margin_scale: float = Field(5.0, gt=0, description="integer score margin at which a margin stops being doubtful")
    expected_margin_scale: float = Field(5.0, gt=0, description="the same for the expected-score margin")
    length_ratio_cap: float = Field(3.0, gt=1, description="chosen/rejected length ratio at which length doubt is full")


class RouteWeights(Model):
    """Prior log-odds of a judge error per unit of each signal; >= 0 so that more doubt never lowers a score.
    Labels that come back refit them (prefmix.routing.learn); these are where the fit starts and shrinks to."""

    judge_disagreement: float = Field(2.0, ge=0)
    order_flip: float = Field(1.5, ge=0)
    small_margin: float = Field(0.5, ge=0)
    small_expected_margin: float = Field(0.5, ge=0)
    length_ratio: float = Field(0.5, ge=0)
    truncated: float = Field(0.5, ge=0)


class RouteCheck(Model):
    """Items a check can verify go to the check, not to people: a regex form (the prompt matches `prompt` and
    both responses hold an answer `answer` extracts) or `function: "module:callable"` (frame -> bool Series)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    domains: list[str] = Field(default_factory=list, description="only these domains (default: every domain)")
    prompt: str | None = None
    answer: str | None = None
    function: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "RouteCheck":
        import re

        if (self.function is None) == (self.prompt is None and self.answer is None):
            raise ValueError("needs either 'function' or a regex form ('prompt' and/or 'answer')")
        for key in ("prompt", "answer"):
            pattern = getattr(self, key)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{key}: {pattern!r} is not a regular expression ({exc})") from None
        if self.function is not None and ":" not in self.function:
            raise ValueError(f"function: expected 'module:callable', got {self.function!r}")
        return self


class LabelStudioTarget(Model):
    """A Label Studio server. The token comes from `api_key_env`, else the Prefect Secret block `api_key_secret`,
    else $LABEL_STUDIO_API_KEY; never from this file."""

    url: str | None = None
    project: str = Field("prefmix {queue_id}", description="project title; {queue_id} is replaced")
    api_key_env: str | None = None
    api_key_secret: str | None = None
    keep_private: bool = Field(True, description="keep gold answers, judge choice and route score out of the server")
    timeout_s: float = Field(60.0, gt=0)


class Anchoring(Model):
    """A share of routed tasks goes out without the judge's suggestion; annotators who follow a shown suggestion
    are flagged (and their votes left out of what routing learns)."""

    hidden_share: Fraction = 0.25
    flag_gap: Fraction = Field(0.2, description="excess agreement with a shown over a hidden suggestion that flags")
    min_z: float = Field(2.5, ge=0, description="... and the gap's z value (gap / its standard error)")
    min_votes: int = Field(5, ge=1, description="votes per condition (shown, hidden) before an annotator is judged")


class Learning(Model):
    prior_agreement: Fraction = Field(0.8, description="judge-vs-human agreement assumed where nothing is measured")
    prior_labels: float = Field(20.0, gt=0, description="weight of the prior per domain, in labels")
    weight_strength: float = Field(1.0, gt=0, description="pull of the fitted signal weights toward routing.weights")


class Routing(Model):
    seed: int | None = Field(None, description="default: the config's seed")
    vendor: str = Field("label-studio", description="who labels (prices, spend reports)")
    budget: RouteBudget = Field(default_factory=lambda: RouteBudget(tasks=100))
    min_per_domain: int | dict[str, int] = Field(0, description="routed tasks per domain at least (gold not counted)")
    gold_share: Fraction = Field(0.1, description="share of each queue's tasks that are gold items with known answers")
    gold: list[LandingZone] = Field(default_factory=list, description="gold files; default: gold items of human.shards")
    annotators: int = Field(3, ge=1, description="k: distinct people per task")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="vendor -> domain (or '*') -> price per label"
    )
    signals: RouteSignals = Field(default_factory=RouteSignals)
    weights: RouteWeights = Field(default_factory=RouteWeights)
    checks: list[RouteCheck] = Field(default_factory=list)
    candidates: list[LandingZone] = Field(default_factory=list, description="default: the store's synthetic pool")
    returned: str | None = Field(None, description="landing zone folder for returned labels; default <store>/routing/returned")
    label_studio: LabelStudioTarget = Field(default_factory=LabelStudioTarget)
    anchoring: Anchoring = Field(default_factory=Anchoring)
    learning: Learning = Field(default_factory=Learning)

    @field_validator("min_per_domain")
    @classmethod
    def _non_negative(cls, value: int | dict[str, int]) -> int | dict[str, int]:
        counts = value.values() if isinstance(value, dict) else [value]
        if any(c < 0 for c in counts):
            raise ValueError("expected whole numbers >= 0")
        return value

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for vendor, per in value.items():
            for domain, price in per.items():
                if not price >= 0:
                    raise ValueError(f"{vendor}.{domain}: expected a price >= 0, got {price!r}")
        return value

    def minimum(self, domain: str) -> int:
        return self.min_per_domain.get(domain, 0) if isinstance(self.min_per_domain, dict) else self.min_per_domain

    def price(self, domain: str, vendor: str | None = None) -> float | None:
        per = self.prices.get(vendor or self.vendor, {})
        return per.get(domain, per.get("*"))

    def check_domains(self, domains: list[str]) -> None:
        named = [*(self.min_per_domain if isinstance(self.min_per_domain, dict) else {}),
                 *(d for per in self.prices.values() for d in per if d != "*"), *(d for c in self.checks for d in c.domains)]
        for domain in named:
            if domain not in domains:
                raise ValueError(f"routing names domain {domain!r}, which is not in domains {domains}")


# -- agent: trajectories as preference data in the nightly (issue 17; read by prefmix.trajectories) -------------


class TrajectoryShard(LandingZone):
    """A landing zone of delivered agent runs: ATIF .json, chat-message .jsonl/.ndjson, trajectory .parquet (a folder:
    every such file directly in it). Each file is a delivery, taken once."""

    FOLDER_GLOBS: ClassVar[tuple[str, ...]] = ("*.json", "*.jsonl", "*.ndjson", "*.parquet")

    vendor: str = Field("unknown", description="who delivered the runs (lineage)")


def _mounted(module: str, name: str, value: Any) -> Any:
    """A room's own config model, validated where the room defines it (imported when a config is read, never
    when this module is: the room's module imports this one)."""
    import importlib

    if value is None:
        return None
    model = getattr(importlib.import_module(module), name)
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{_location(first['loc'])}: {_describe(first)}") from None


RULES = ("prefmix.trajectories.config", "Rules")
ENVIRONMENT = ("prefmix.trajectories.rollout", "Environment")


class Agent(Model):
    """Agent runs -> trajectory pairs and step pairs, blended next to synthetic and human rows (`blend.kind_shares`).

    Runs come from `shards` (delivered files) and, with `environment`, from the demo tool environment run by
    `teacher` during the nightly. `rules` are the derivation rules (trajectories.config.Rules: seed, domain,
    max_pairs_per_task, ...); `environment` the rollout settings (trajectories.rollout.Environment: tasks, attempts,
    max_steps, temperature, max_tokens, seed, concurrency)."""

    shards: list[TrajectoryShard] = Field(default_factory=list)
    derive: list[Literal["trajectory", "step"]] = Field(
        default_factory=lambda: ["trajectory", "step"], min_length=1,
        description="which rows to derive: trajectory (kind trajectory_pair), step (kind step_pair)")
    rules: Any = Field(default_factory=lambda: _mounted(*RULES, {}), description="trajectories.config.Rules")
    environment: Any = Field(None, description="trajectories.rollout.Environment; unset: no rollouts")
    teacher: str | None = Field(None, description="the configured teacher that runs the attempts (default: the first teacher)")
    benchmark_tasks: BenchmarkTasks = Field(default_factory=BenchmarkTasks, description="task ids the gate keeps out (benchmark_overlap)")

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        return _mounted(*RULES, {} if value is None else value)

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        return _mounted(*ENVIRONMENT, value)

    @field_validator("derive")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists {next(v for v in value if value.count(v) > 1)!r} twice")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.shards) or self.environment is not None


class Dataset(Model):
    """The named dataset a nightly run grows: each run publishes its next version."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="folder name under datasets/")
    window_days: int | None = Field(None, ge=1, description="keep only records that entered the pool in the last N days")


class Config(Model):
    """The whole run: where data lives, who generates it, how it is mixed and gated."""

    name: str = "prefmix"
    store: str = "./store"
    seed: int = 0
    dataset: Dataset | None = Field(None, description="`dataset: NAME` or {name, window_days}; default: the config's name")
    domains: list[str] = Field(default_factory=lambda: list(DEFAULT_DOMAINS))
    prompts: list[PromptSet] = Field(default_factory=list)
    human: Human = Field(default_factory=Human)
    teachers: list[Teacher] = Field(default_factory=list)
    generation: Generation = Field(default_factory=Generation)
    blend: Blend = Field(default_factory=Blend)
    gate: Gate = Field(default_factory=Gate)
    lineage: Lineage = Field(default_factory=Lineage)
    routing: Routing = Field(default_factory=Routing)
    agent: Agent = Field(default_factory=Agent)
    vllm_python: str | None = None

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            raise ValueError(f"teachers: duplicate teacher name {next(n for n in names if names.count(n) > 1)!r}")
        gen = self.generation
        for ref in [*gen.teachers, *([gen.judge] if gen.judge else []), *gen.judges]:
            if ref not in names:
                raise ValueError(f"generation names teacher {ref!r}, which is not in teachers {names}")
        for teacher in self.blend.teacher_shares:
            if teacher not in names:
                raise ValueError(f"blend.teacher_shares names teacher {teacher!r}, which is not in teachers {names}")
        for domain in [*self.blend.domain_ratios, *self.blend.domain_shares, *self.blend.domain_kind_shares]:
            if domain not in self.domains:
                raise ValueError(f"blend names domain {domain!r}, which is not in domains {self.domains}")
        self.routing.check_domains(self.domains)
        self._check_agent(names)
        return self

    def _check_agent(self, names: list[str]) -> None:
        agent = self.agent
        for key, teacher in (("agent.teacher", agent.teacher), ("gate.chat_template.teacher", self.gate.chat_template.teacher)):
            if teacher is not None and teacher not in names:
                raise ValueError(f"{key} names teacher {teacher!r}, which is not in teachers {names}")
        if agent.environment is not None and not names:
            raise ValueError("agent.environment: no teachers configured; the rollouts need one (agent.teacher)")
        if agent.enabled and agent.rules.domain not in self.domains:
            raise ValueError(f"agent.rules.domain {agent.rules.domain!r} is not in domains {self.domains}")

    def dataset_name(self) -> str:
        return self.dataset.name if self.dataset else self.name

    def judge_teacher(self) -> Teacher:
        """The primary judge: the one whose verdict decides a pair."""
        gen = self.generation
        name = gen.judge or (gen.judges[0] if gen.judges else self.generation_teachers()[0].name)
        return next(t for t in self.teachers if t.name == name)

    def judge_teachers(self) -> list[Teacher]:
        """Every judge, the primary first: each reads every pair (generation.judge_votes)."""
        primary = self.judge_teacher()
        others = [t for name in self.generation.judges for t in self.teachers if t.name == name and name != primary.name]
        return [primary, *others]

    def agent_teacher(self) -> Teacher | None:
        """The teacher that runs the agent attempts: agent.teacher, else the first teacher."""
        name = self.agent.teacher
        return next((t for t in self.teachers if t.name == name), None) if name else (self.teachers[0] if self.teachers else None)

    def generation_teachers(self) -> list[Teacher]:
        wanted = self.generation.teachers or [t.name for t in self.teachers]
        return [t for t in self.teachers if t.name in wanted]

    def store_root(self) -> str:
        """PREFMIX_STORE wins over the file's `store:` (an explicit --store wins over both; see prefmix.context)."""
        return os.environ.get("PREFMIX_STORE") or self.store

    def redacted(self) -> dict[str, Any]:
        """The resolved config as plain data; secrets are only ever named (env var / block), never held."""
        return self.model_dump(mode="json")


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not (isinstance(part, str) and part.startswith("function-"))) or "<root>"


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    got = error.get("input")
    if kind not in ("value_error", "assertion_error") and not isinstance(got, (dict, list)):
        message += f", got {got!r}"
    return message


def parse(data: Any, source: str = "<config>") -> Config:
    """Validate plain data into a Config; the first problem becomes a one-line ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_location(first['loc'])}: {_describe(first)}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str = "--set") -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to plain config data."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}: expected key=value, got {item!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = parse_yaml(raw, f"{source} {key}")
    return data


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a config file. Relative data paths resolve against the file's folder."""
    data = read_yaml(path, "config file")
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    config = parse(data, str(path))
    return resolve_paths(config, Path(path).resolve().parent)


def resolve_paths(config: Config, base: Path) -> Config:
    def absolute(p: str) -> str:
        return p if "://" in p or Path(p).is_absolute() else str((base / p).resolve())

    config.store = absolute(config.store)
    for zone in [*config.prompts, *config.human.shards]:
        if zone.path is not None:
            zone.path = absolute(zone.path)
        if zone.glob is not None:
            zone.glob = absolute(zone.glob)
    for teacher in config.teachers:
        if teacher.launch and teacher.launch.model_dir:
            teacher.launch.model_dir = absolute(teacher.launch.model_dir)
    config.gate.suites = [absolute(p) for p in config.gate.suites]
    config.gate.contamination.eval_sets = [absolute(p) for p in config.gate.contamination.eval_sets]
    for tasks in (config.gate.benchmark_tasks, config.agent.benchmark_tasks):
        tasks.files = [absolute(p) for p in tasks.files]
    for zone in config.agent.shards:
        zone.path = absolute(zone.path) if zone.path is not None else None
        zone.glob = absolute(zone.glob) if zone.glob is not None else None
    for zone in [*config.routing.candidates, *config.routing.gold]:
        zone.path = absolute(zone.path) if zone.path is not None else None
        zone.glob = absolute(zone.glob) if zone.glob is not None else None
    if config.routing.returned:
        config.routing.returned = absolute(config.routing.returned)
    if config.generation.constitution:
        config.generation.constitution = absolute(config.generation.constitution)
    return config
