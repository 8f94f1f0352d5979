"""Checks of agent rows (trajectory and step pairs, any row with messages), reported like the content checks.

- tool_linking: every `tool` message names a call of an assistant message before it (context + each side), and a
  step pair's completion holds no tool message (trajectories.checks);
- task_group_split: no task group in both train and eval, within the batch or against the earlier published batches;
- chat_template_prefix: the prompt messages rendered with the teacher's chat template (transformers'
  `apply_chat_template`, tools passed, a generation prompt after a non-assistant turn) are a prefix of the prompt +
  chosen and the prompt + rejected rendered; the tokenizer is the one in the teacher's launch.model_dir;
- benchmark_overlap: no row's task id or task group is a benchmark task the config lists.

A batch without agent rows makes every one of them not applicable (passed, observed null).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import polars as pl
import pyarrow.parquet as pq

from prefmix.config import BenchmarkTasks, Config
from prefmix.errors import InputError
from prefmix.records import POLARS_SCHEMA
from prefmix.trajectories.checks import tool_output_in_completion, unlinked_tool_messages
from prefmix.validators.measure import Measure, excerpt
from prefmix.validators.metrics import all_null

CHECKS = ("tool_linking", "task_group_split", "chat_template_prefix", "benchmark_overlap")
COLUMNS = ("record_id", "source", "domain", "kind", "split", "context", "chosen_messages", "rejected_messages", "tools",
           "task_group", "trajectory")
SIDES = ("chosen_messages", "rejected_messages")


def read_rows(files: Sequence[Path]) -> pl.DataFrame:
    """The batch's conversational rows: a kind other than single_turn, or messages. Files are scanned with
    the filter pushed down (only the rows it keeps are read whole), `kind` left out of it when the file's
    statistics say it is all null."""
    frames = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        names = meta.schema.to_arrow_schema().names
        present = [c for c in COLUMNS if c in names]
        terms = []
        if "kind" in present and not all_null(meta, "kind"):
            terms.append(pl.col("kind").is_not_null() & (pl.col("kind") != "single_turn"))
        # (lists: an empty list is not null, and the statistics cannot tell the two apart)
        terms += [pl.col(c).is_not_null() for c in ("context", "chosen_messages") if c in present]
        if not terms:
            continue
        frame = pl.scan_parquet(path).select(present).filter(pl.any_horizontal(terms)).collect()
        frame = frame.with_columns([pl.lit(None, dtype=POLARS_SCHEMA[c]).alias(c) for c in COLUMNS if c not in present])
        frames.append(frame.select(COLUMNS))
    if not frames:
        return pl.DataFrame(schema={c: POLARS_SCHEMA[c] for c in COLUMNS})
    return pl.concat(frames, how="vertical_relaxed")


def measure(config: Config, files: Sequence[Path], earlier: Sequence[Path], keep: int, active: set[str]) -> list[Measure]:
    rows = read_rows(files)
    out = [
        tool_linking(rows, keep) if "tool_linking" in active else None,
        task_group_split(rows, earlier, keep) if "task_group_split" in active else None,
        chat_template_prefix(rows, config, keep) if "chat_template_prefix" in active else None,
        benchmark_overlap(rows, config, keep) if "benchmark_overlap" in active else None,
    ]
    return [m for m in out if m is not None]


def _none(name: str, description: str, note: str = "not applicable: no agent rows") -> Measure:
    return Measure(name, None, max_value=0, observed=None, note=note, description=description)


def _sample(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"record_id": row["record_id"], "source": row["source"], "domain": row["domain"], **extra}


# -- tool_linking ----------------------------------------------------------------------------------------------
TOOL_LINKING = "every tool result names a call of an earlier assistant message; no tool output in a step pair's completion"


def tool_linking(rows: pl.DataFrame, keep: int) -> Measure:
    if rows.height == 0:
        return _none("tool_linking", TOOL_LINKING)
    unlinked = unlinked_tool_messages(rows)
    leaked = tool_output_in_completion(rows)
    bad = pl.concat([unlinked.select("record_id"), leaked.select("record_id")]).unique()
    meta = rows.select("record_id", "source", "domain")
    samples = [
        _sample(r, problem="unlinked tool result", side=r["side"], message=r["message"], tool_call_id=r["tool_call_id"])
        for r in unlinked.join(meta, on="record_id").head(keep).iter_rows(named=True)
    ] + [
        _sample(r, problem="tool output in a step-pair completion", side=r["side"])
        for r in leaked.join(meta, on="record_id").head(max(0, keep - unlinked.height)).iter_rows(named=True)
    ]
    return Measure(
        "tool_linking", bad.height, max_value=0,
        observed={"rows": bad.height, "unlinked_tool_results": unlinked.height, "tool_output_in_completion": leaked.height,
                  "rows_checked": rows.height},
        samples=samples[:keep], description=TOOL_LINKING,
    )


# -- task_group_split ------------------------------------------------------------------------------------------
TASK_GROUP_SPLIT = "no task group in both train and eval, in this batch or against the earlier published batches"


def _earlier_groups(earlier: Sequence[Path]) -> pl.DataFrame:
    """(task_group, split, batch) of the earlier published batches' agent rows (the two columns only)."""
    parts = []
    for batch_dir in earlier:
        for path in sorted((Path(batch_dir) / "data").glob("*.parquet")):
            names = pq.read_schema(path).names
            if "task_group" not in names or "split" not in names:
                continue
            found = (pl.scan_parquet(path).select("task_group", "split").filter(pl.col("task_group").is_not_null())
                     .unique().collect())
            parts.append(found.with_columns(batch=pl.lit(Path(batch_dir).name)))
    empty = pl.DataFrame(schema={"task_group": pl.String, "split": pl.String, "batch": pl.String})
    return pl.concat(parts, how="vertical_relaxed").unique() if parts else empty


def task_group_split(rows: pl.DataFrame, earlier: Sequence[Path], keep: int) -> Measure:
    groups = rows.filter(pl.col("task_group").is_not_null()).select("task_group", "split").unique()
    if groups.height == 0:
        return _none("task_group_split", TASK_GROUP_SPLIT, "not applicable: no rows with a task group")
    within = groups.group_by("task_group").agg(pl.col("split").sort().alias("splits")).filter(pl.col("splits").list.len() > 1)
    before = _earlier_groups(earlier)
    across = groups.join(before, on="task_group", suffix="_earlier").filter(pl.col("split") != pl.col("split_earlier"))
    leaked = pl.concat([within.select("task_group"), across.select("task_group")]).unique().sort("task_group")
    samples = [{"task_group": r["task_group"], "splits": r["splits"], "where": "this batch"} for r in within.head(keep).iter_rows(named=True)]
    samples += [{"task_group": r["task_group"], "split": r["split"], "earlier_split": r["split_earlier"], "earlier_batch": r["batch"]}
                for r in across.sort("task_group", "batch").head(max(0, keep - len(samples))).iter_rows(named=True)]
    return Measure(
        "task_group_split", leaked.height, max_value=0,
        observed={"task_groups_in_both_splits": leaked.height, "in_this_batch": within.height,
                  "against_earlier_batches": across.select("task_group").n_unique(), "task_groups": groups["task_group"].n_unique(),
                  "earlier_batches": len(earlier)},
        samples=samples, description=TASK_GROUP_SPLIT,
    )


# -- chat_template_prefix --------------------------------------------------------------------------------------
CHAT_TEMPLATE = "the prompt rendered with the teacher's chat template is a prefix of prompt + chosen (and + rejected)"


def template_dir(config: Config) -> tuple[str | None, str]:
    """The tokenizer folder whose chat template renders the rows, and whose it is (or why there is none)."""
    named = config.gate.chat_template.teacher or config.agent.teacher
    teachers = [t for t in config.teachers if t.name == named] if named else config.teachers
    for teacher in teachers:
        if teacher.launch is not None and teacher.launch.model_dir:
            return teacher.launch.model_dir, f"teacher {teacher.name}"
    if named:
        why = f"teacher {named!r} has no launch.model_dir"
    else:
        why = "no teacher has a launch.model_dir" if config.teachers else "no teacher is configured"
    return None, f"not applicable: {why} (the tokenizer folder of the chat template)"


def hf_messages(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Canonical messages as transformers' chat templates take them (tool call arguments as objects)."""
    out = []
    for m in messages or []:
        message: dict[str, Any] = {"role": m["role"], "content": m["content"] or ""}
        if m.get("tool_calls"):
            message["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": _arguments(c["arguments"])}}
                                     for c in m["tool_calls"]]
        if m.get("tool_call_id") is not None:
            message["tool_call_id"] = m["tool_call_id"]
        out.append(message)
    return out


def _arguments(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def load_tokenizer(folder: str) -> tuple[Any, str | None]:
    """(tokenizer, None), or (None, why not) when transformers or the folder's tokenizer is missing."""
    if not (Path(folder) / "tokenizer_config.json").is_file():
        return None, f"not applicable: {folder} holds no tokenizer (tokenizer_config.json)"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" on every gate
    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError:
        return None, "not applicable: transformers is not installed"
    transformers.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "chat_template", None):
        return None, f"not applicable: the tokenizer in {folder} has no chat template"
    return tokenizer, None


def render_prefixes(tokenizer: Any, row: dict[str, Any]) -> dict[str, str | None]:
    """Per side, None when the rendered prompt is a prefix of the rendered prompt + side, else what went wrong."""
    prompt = hf_messages(row["context"])
    tools = _arguments(row["tools"]) if row["tools"] else None
    found: dict[str, str | None] = {}
    try:
        last = prompt[-1]["role"] if prompt else None
        head = tokenizer.apply_chat_template(prompt, tools=tools, tokenize=False, add_generation_prompt=last != "assistant")
    except Exception as exc:  # a template that refuses the messages: the row cannot be rendered at all
        return {side: f"prompt not renderable: {' '.join(str(exc).split())[:120]}" for side in SIDES}
    for side in SIDES:
        try:
            full = tokenizer.apply_chat_template(prompt + hf_messages(row[side]), tools=tools, tokenize=False)
        except Exception as exc:
            found[side] = f"not renderable: {' '.join(str(exc).split())[:120]}"
            continue
        if full.startswith(head):
            found[side] = None
        else:
            at = next((i for i, (a, b) in enumerate(zip(head, full)) if a != b), min(len(head), len(full)))
            found[side] = f"differs at character {at}: prompt {excerpt(head[at:], width=40)!r}, full {excerpt(full[at:], width=40)!r}"
    return found


def chat_template_prefix(rows: pl.DataFrame, config: Config, keep: int) -> Measure:
    talk = rows.filter(pl.col("chosen_messages").is_not_null() & pl.col("rejected_messages").is_not_null())
    if talk.height == 0:
        return _none("chat_template_prefix", CHAT_TEMPLATE, "not applicable: no rows with messages")
    folder, whose = template_dir(config)
    if folder is None:
        return _none("chat_template_prefix", CHAT_TEMPLATE, whose)
    tokenizer, why = load_tokenizer(folder)
    if tokenizer is None:
        return _none("chat_template_prefix", CHAT_TEMPLATE, str(why))
    cap = config.gate.chat_template.max_rows
    checked = talk.sort("record_id").head(cap)
    bad, samples = 0, []
    for row in checked.iter_rows(named=True):
        problems = {side: p for side, p in render_prefixes(tokenizer, row).items() if p is not None}
        if problems:
            bad += 1
            if len(samples) < keep:
                side, problem = next(iter(problems.items()))
                samples.append(_sample(row, side=side, problem=problem))
    note = f"{whose}, template of {folder}" + (f"; the {cap} rows with the lowest record_id of {talk.height}" if talk.height > cap else "")
    return Measure(
        "chat_template_prefix", bad, max_value=0,
        observed={"rows": bad, "rows_checked": checked.height, "rows_with_messages": talk.height, "tokenizer": folder},
        note=note, samples=samples, description=CHAT_TEMPLATE,
    )


# -- benchmark_overlap -----------------------------------------------------------------------------------------
BENCHMARK = "no row's task id or task group is a listed benchmark task (agent.benchmark_tasks, gate.benchmark_tasks)"


def read_task_ids(path: str) -> list[str]:
    """Benchmark task ids of one file: .txt (one a line), .json (a list), .jsonl (task_id or instance_id), .parquet."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: benchmark task file not found")
    suffix = file.suffix.lower()
    try:
        if suffix == ".txt":
            return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if suffix == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
                raise InputError(f"{file}: expected a JSON list of task id strings")
            return data
        if suffix in (".jsonl", ".ndjson"):
            ids = []
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    item = json.loads(line)
                    value = item.get("task_id", item.get("instance_id")) if isinstance(item, dict) else None
                    if not isinstance(value, str):
                        raise InputError(f"{file}: line {number}: expected an object with a string task_id or instance_id")
                    ids.append(value)
            return ids
        if suffix == ".parquet":
            frame = pl.read_parquet(file)
            column = next((c for c in ("task_id", "instance_id") if c in frame.columns), None)
            if column is None:
                raise InputError(f"{file}: no task_id (or instance_id) column")
            return [str(v) for v in frame[column].drop_nulls().to_list()]
    except (ValueError, OSError, pl.exceptions.PolarsError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{file}: not readable as benchmark task ids ({' '.join(str(exc).split())[:120]})") from None
    raise InputError(f"{file}: unknown benchmark task file {file.suffix!r}, expected .txt, .json, .jsonl or .parquet")


def benchmark_ids(config: Config) -> set[str]:
    lists: list[BenchmarkTasks] = [config.agent.benchmark_tasks, config.gate.benchmark_tasks]
    return {i.strip() for tasks in lists for i in [*tasks.ids, *(v for f in tasks.files for v in read_task_ids(f))] if i.strip()}


def benchmark_overlap(rows: pl.DataFrame, config: Config, keep: int) -> Measure:
    ids = benchmark_ids(config)
    if not ids:
        return _none("benchmark_overlap", BENCHMARK, "not applicable: no benchmark tasks listed")
    if rows.height == 0:
        return _none("benchmark_overlap", BENCHMARK)
    listed = pl.Series(sorted(ids), dtype=pl.String).implode()
    task = pl.col("trajectory").struct.field("task_id")
    hit = task.is_in(listed).fill_null(False) | pl.col("task_group").is_in(listed).fill_null(False)
    found = rows.filter(hit).with_columns(task_id=task)
    samples = [_sample(r, task_id=r["task_id"], task_group=r["task_group"]) for r in found.head(keep).iter_rows(named=True)]
    return Measure(
        "benchmark_overlap", found.height, max_value=0,
        observed={"rows": found.height, "tasks": found.select(pl.coalesce("task_id", "task_group")).n_unique() if found.height else 0,
                  "benchmark_tasks": len(ids)},
        samples=samples, description=BENCHMARK,
    )


def check_files(config: Config) -> None:
    """Preflight: every benchmark task file is there and readable (one-line InputError)."""
    benchmark_ids(config)
