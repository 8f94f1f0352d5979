"""The canonical preference record: one Arrow schema for every row prefmix writes."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Iterable

import polars as pl
import pyarrow as pa

SOURCES = ("human", "synthetic")
SPLITS = ("train", "eval")
# What a row is: one answer pair, two whole agent runs of one task, or one agent step after a shared prefix.
KINDS = ("single_turn", "trajectory_pair", "step_pair")

# A tool call as TRL's conversational layout carries it; `arguments` is the JSON text the model wrote.
TOOL_CALL = pa.struct([("id", pa.string()), ("name", pa.string()), ("arguments", pa.string())])
# A chat message; `tool_call_id` names the call a tool message answers.
MESSAGE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("tool_calls", pa.list_(TOOL_CALL)),
        ("tool_call_id", pa.string()),
    ]
)

# One judge's reading of a pair in one presentation order ("ab": chosen shown first, "ba": rejected first).
JUDGE_VOTE = pa.struct(
    [
        ("judge", pa.string()),
        ("order", pa.string()),
        ("chosen_score", pa.float64()),
        ("rejected_score", pa.float64()),
        ("winner", pa.string()),  # chosen | rejected | tie, after the order is undone; null when unparseable
    ]
)

GENERATION = pa.struct(
    [
        ("teacher", pa.string()),
        ("teacher_models", pa.list_(pa.string())),
        ("judge", pa.string()),
        ("strategy", pa.string()),
        ("sampling", pa.string()),  # JSON: temperature, top_p, max_tokens, n, seed
        ("template_id", pa.string()),
        ("template_sha256", pa.string()),
        ("constitution_id", pa.string()),
        ("constitution_sha256", pa.string()),
        ("principle_id", pa.string()),
        ("run_id", pa.string()),
        ("vllm_version", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("finish_reasons", pa.list_(pa.string())),  # [chosen, rejected]: "stop", "length", ...
        ("chosen_expected", pa.float64()),  # the judge's expected score from its score-token probabilities
        ("rejected_expected", pa.float64()),
        ("judge_votes", pa.list_(JUDGE_VOTE)),
        ("fingerprint", pa.string()),  # the generation fingerprint the pair was made under
    ]
)

ANNOTATION = pa.struct(
    [
        ("vendor", pa.string()),
        ("annotator_ids", pa.list_(pa.string())),
        ("annotator_count", pa.int32()),
        ("agreement", pa.float64()),
        ("review_passes", pa.int32()),
        ("adjudicated", pa.bool_()),
    ]
)

# Human pairs that prefmix itself sent to a labeling tool: where the label came from and why the item went.
ROUTE = pa.struct(
    [
        ("label_source", pa.string()),  # human_vendor
        ("queue_id", pa.string()),
        ("task_id", pa.string()),  # the prefmix task id the labeling tool held
        ("reason", pa.string()),  # the signal that weighed most in the route score
        ("score", pa.float64()),
        ("lead_time_s", pa.float64()),  # mean annotation time of the counted judgments
    ]
)

# Where a trajectory-derived row came from: the task, both runs and the step they part at.
TRAJECTORY_LINEAGE = pa.struct(
    [
        ("task_id", pa.string()),
        ("env_key", pa.string()),  # canonical JSON of the environment (repo/site, commit/snapshot, image, harness, version)
        ("chosen_trajectory_id", pa.string()),
        ("rejected_trajectory_id", pa.string()),
        ("divergence_step", pa.int32()),  # step pairs: index of the first step where the runs differ
        ("chosen_outcome", pa.float64()),  # resolved (1/0) or reward
        ("rejected_outcome", pa.float64()),
    ]
)

# Where a row was read from: the delivered file, by name and content, and the row's 0-based index in it.
ORIGIN_FIELDS = [
    pa.field("origin_uri", pa.string(), nullable=False),
    pa.field("origin_sha256", pa.string(), nullable=False),
    pa.field("origin_row", pa.int64(), nullable=False),
]
# Where a published row went: null until a blend puts it in a batch's train or eval split.
BATCH_FIELDS = [pa.field("batch_id", pa.string()), pa.field("split", pa.string())]

SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("chosen_score", pa.float64()),
        pa.field("rejected_score", pa.float64()),
        *ORIGIN_FIELDS,
        pa.field("generation", GENERATION),
        pa.field("annotation", ANNOTATION),
        pa.field("context", pa.list_(MESSAGE)),
        *BATCH_FIELDS,
        # Conversational rows (multi-turn, agentic): `context` is the whole prompt as messages and the
        # completions as messages; `prompt`, `chosen`, `rejected` hold their plain-text rendering (ids, dedup, checks).
        pa.field("kind", pa.string()),  # one of KINDS; null reads as single_turn
        pa.field("chosen_messages", pa.list_(MESSAGE)),
        pa.field("rejected_messages", pa.list_(MESSAGE)),
        pa.field("tools", pa.string()),  # JSON list of the tool schemas offered to the agent
        pa.field("task_group", pa.string()),  # rows of one task group share a split
        pa.field("trajectory", TRAJECTORY_LINEAGE),
        pa.field("route", ROUTE),
    ]
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
POLARS_SCHEMA: pl.Schema = pl.Schema(pl.from_arrow(SCHEMA.empty_table()).schema)

_SEP = "\x1f"


def normalize_text(text: str) -> str:
    """NFC, trimmed, internal whitespace collapsed: what 'the same text' means for ids."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def record_id(prompt: str, chosen: str, rejected: str) -> str:
    """Stable content hash of the normalized (prompt, chosen, rejected) triple."""
    key = _SEP.join(normalize_text(t) for t in (prompt, chosen, rejected))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def prompt_key(prompt: str) -> str:
    """Stable hash of the normalized prompt; used for dedup and split assignment."""
    return hashlib.sha256(normalize_text(prompt).encode("utf-8")).hexdigest()


def record_ids(prompts: Iterable[str], chosens: Iterable[str], rejecteds: Iterable[str]) -> list[str]:
    return [record_id(p, c, r) for p, c, r in zip(prompts, chosens, rejecteds)]


def with_record_id(frame: pl.DataFrame) -> pl.DataFrame:
    """Add (or overwrite) record_id from prompt/chosen/rejected."""
    ids = record_ids(frame["prompt"].to_list(), frame["chosen"].to_list(), frame["rejected"].to_list())
    return frame.with_columns(pl.Series("record_id", ids, dtype=pl.String))


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a frame exactly the canonical columns, order and types (missing optional columns become null;
    structs written before a field was added gain it as null)."""
    return _conform_to(frame, POLARS_SCHEMA)


def upcast(expr: pl.Expr, have: pl.DataType, want: pl.DataType) -> pl.Expr:
    """Cast `expr` to `want`, filling struct fields that `have` lacks with nulls (Polars refuses to cast
    between structs with different fields); list elements are handled the same way."""
    if have == want:
        return expr
    if isinstance(want, pl.Struct) and isinstance(have, pl.Struct):
        present = {f.name: f.dtype for f in have.fields}
        fields = [
            upcast(expr.struct.field(f.name), present[f.name], f.dtype).alias(f.name) if f.name in present
            else pl.lit(None, dtype=f.dtype).alias(f.name)
            for f in want.fields
        ]
        return pl.when(expr.is_null()).then(pl.lit(None, dtype=want)).otherwise(pl.struct(fields))
    if isinstance(want, pl.List) and isinstance(have, pl.List) and isinstance(want.inner, pl.Struct):
        return expr.list.eval(upcast(pl.element(), have.inner, want.inner)).cast(want)
    return expr.cast(want)


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """Arrow table with the canonical schema (nullability included)."""
    return conform(frame).to_arrow().cast(SCHEMA)


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=POLARS_SCHEMA)


# =====================================================================================================
# The trajectory record: one agent run on one task, as every trajectory reader returns it, and the two
# non-pairwise layouts derived from runs (TRL's PRM step labels, KTO rows). Appended section: the
# preference schema above is untouched; these reuse its TOOL_CALL, MESSAGE and ANNOTATION structs.
# =====================================================================================================

STEP_SOURCES = ("system", "user", "agent")
VERIFIER_KINDS = ("test", "llm_judge", "human")
# The environment a run happened in; two runs pair only when every one of these fields is equal.
ENV_FIELDS = ("repo_or_site", "base_commit_or_snapshot", "image", "harness", "harness_version")

# A tool result; `tool_call_id` names the call of the same step it answers (readers enforce it).
OBSERVATION = pa.struct([("tool_call_id", pa.string()), ("content", pa.string()), ("truncated", pa.bool_())])
# One step, numbered 1..n: a system prompt, a user message, or an agent turn (message, calls, their results).
STEP = pa.struct(
    [
        ("idx", pa.int32()),
        ("source", pa.string()),  # one of STEP_SOURCES
        ("content", pa.string()),
        ("reasoning", pa.string()),  # the agent's explicit reasoning; never part of a derived completion
        ("tool_calls", pa.list_(TOOL_CALL)),
        ("observations", pa.list_(OBSERVATION)),
    ]
)
ENVIRONMENT = pa.struct([(name, pa.string()) for name in ENV_FIELDS])
POLICY = pa.struct([("model", pa.string()), ("revision", pa.string()), ("sampling", pa.string())])  # sampling: JSON text
VERIFIER = pa.struct([("kind", pa.string()), ("name", pa.string()), ("version", pa.string())])  # kind: VERIFIER_KINDS
OUTCOME = pa.struct(
    [("resolved", pa.bool_()), ("reward", pa.float64()), ("verifier", VERIFIER), ("exit_status", pa.string())]
)

TRAJECTORY_SCHEMA = pa.schema(
    [
        pa.field("trajectory_id", pa.string(), nullable=False),  # given by the file, else trajectory_content_id
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("task_group", pa.string(), nullable=False),  # defaults to task_id; rows of one group share a split
        pa.field("env", ENVIRONMENT),
        pa.field("policy", POLICY),
        pa.field("tools", pa.string()),  # JSON list of the tool schemas offered to the agent
        pa.field("steps", pa.list_(STEP), nullable=False),
        pa.field("outcome", OUTCOME),
        *ORIGIN_FIELDS,
    ]
)
TRAJECTORY_COLUMNS: tuple[str, ...] = tuple(TRAJECTORY_SCHEMA.names)
TRAJECTORY_POLARS_SCHEMA: pl.Schema = pl.Schema(pl.from_arrow(TRAJECTORY_SCHEMA.empty_table()).schema)
# What a run IS (its content id covers these): not where it was read from.
_TRAJECTORY_CONTENT = ("task_id", "task_group", "env", "policy", "tools", "steps", "outcome")

# The agent run a derived row comes from: its task, its task group (rows of one group share a split), its id.
RUN_FIELDS = [
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("task_group", pa.string(), nullable=False),
    pa.field("trajectory_id", pa.string(), nullable=False),
]

# TRL's stepwise-supervision (PRM) layout: prompt, completions (one text per agent step), labels (one bool each).
STEP_LABEL_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),  # record_id(prompt, completions joined, labels as text)
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("completions", pa.list_(pa.string()), nullable=False),
        pa.field("labels", pa.list_(pa.bool_()), nullable=False),
        pa.field("soft_labels", pa.list_(pa.float64())),  # Monte Carlo: share of rollouts that succeeded
        pa.field("rollouts", pa.list_(pa.int64())),  # Monte Carlo: N rollouts behind each label
        pa.field("steps", pa.list_(pa.int32()), nullable=False),  # the trajectory step idx of each completion
        pa.field("label_method", pa.string(), nullable=False),  # human_first_error | mc_hard | mc_soft
        pa.field("context", pa.list_(MESSAGE)),  # the prompt as messages
        pa.field("tools", pa.string()),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        *RUN_FIELDS,
        pa.field("annotation", ANNOTATION),
        *ORIGIN_FIELDS,
        *BATCH_FIELDS,
    ]
)

# TRL's unpaired (KTO) layout: one run's completion and whether it resolved the task.
KTO_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),  # record_id(prompt, completion, "true"/"false")
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),
        pa.field("label", pa.bool_(), nullable=False),
        pa.field("context", pa.list_(MESSAGE)),
        pa.field("completion_messages", pa.list_(MESSAGE)),
        pa.field("tools", pa.string()),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("score", pa.float64()),  # the outcome: reward, else resolved as 1/0
        *RUN_FIELDS,
        pa.field("env_key", pa.string(), nullable=False),
        *ORIGIN_FIELDS,
        *BATCH_FIELDS,
    ]
)
STEP_LABEL_POLARS_SCHEMA: pl.Schema = pl.Schema(pl.from_arrow(STEP_LABEL_SCHEMA.empty_table()).schema)
KTO_POLARS_SCHEMA: pl.Schema = pl.Schema(pl.from_arrow(KTO_SCHEMA.empty_table()).schema)


def env_key_expr(env: pl.Expr) -> pl.Expr:
    """Canonical JSON of an ENVIRONMENT struct (fields in ENV_FIELDS order, compact, null fields kept):
    the key trajectory pairing groups on and TRAJECTORY_LINEAGE.env_key records."""
    fields = [env.struct.field(name).cast(pl.String).alias(name) for name in ENV_FIELDS]
    return pl.struct(fields).struct.json_encode()


def env_key(env: dict[str, str | None] | None) -> str:
    """env_key_expr for one environment given as a dict (same text, computed by the same expression)."""
    row = {name: (env or {}).get(name) for name in ENV_FIELDS}
    frame = pl.DataFrame([{"env": row}], schema={"env": pl.Struct({name: pl.String for name in ENV_FIELDS})})
    return str(frame.select(env_key_expr(pl.col("env"))).item())


def with_trajectory_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill missing trajectory_id with its content id; ids a file gives are kept as they are."""
    missing = frame.get_column("trajectory_id").is_null()
    if not missing.any():
        return frame
    computed = pl.Series("computed", trajectory_content_ids(frame.filter(missing)), dtype=pl.String)
    fill = pl.Series("fill", [None] * frame.height, dtype=pl.String).scatter(missing.arg_true(), computed)
    return frame.with_columns(pl.coalesce(pl.col("trajectory_id"), fill).alias("trajectory_id"))


def trajectory_content_ids(frame: pl.DataFrame) -> list[str]:
    """Stable id of each run from its content (task, group, env, policy, tools, steps, outcome; not its origin):
    sha256 of the record's canonical JSON after conform_trajectories."""
    content = pl.struct([pl.col(name) for name in _TRAJECTORY_CONTENT]).struct.json_encode()
    texts = conform_trajectories(frame).select(content.alias("c")).get_column("c").to_list()
    return [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]


def _conform_to(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    frame = frame.with_columns(missing) if missing else frame
    have = frame.schema
    return frame.select([upcast(pl.col(name), have[name], dtype).alias(name) for name, dtype in schema.items()])


def conform_trajectories(frame: pl.DataFrame) -> pl.DataFrame:
    """Exactly the trajectory columns, order and types (like conform() for preference rows)."""
    return _conform_to(frame, TRAJECTORY_POLARS_SCHEMA)


def trajectories_to_arrow(frame: pl.DataFrame) -> pa.Table:
    return conform_trajectories(frame).to_arrow().cast(TRAJECTORY_SCHEMA)


def conform_step_labels(frame: pl.DataFrame) -> pl.DataFrame:
    return _conform_to(frame, STEP_LABEL_POLARS_SCHEMA)


def step_labels_to_arrow(frame: pl.DataFrame) -> pa.Table:
    return conform_step_labels(frame).to_arrow().cast(STEP_LABEL_SCHEMA)


def conform_kto(frame: pl.DataFrame) -> pl.DataFrame:
    return _conform_to(frame, KTO_POLARS_SCHEMA)


def kto_to_arrow(frame: pl.DataFrame) -> pa.Table:
    return conform_kto(frame).to_arrow().cast(KTO_SCHEMA)
