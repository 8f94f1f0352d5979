"""Gate batches with agent rows: the clean batch of tests/validators/batches.py whose first domain's synthetic rows
(rows 28..39) are step pairs of the demo tool environment, and a tokenizer folder whose chat template treats the
last message as many real templates do (its content trimmed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from prefmix.records import POLARS_SCHEMA, conform, with_record_id
from prefmix.trajectories.render import render_messages
from tests.validators.batches import clean_frame

AGENT_ROWS = range(28, 40)  # the first domain's synthetic rows
TOOLS = json.dumps([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}])
COUNTRIES = ["France", "Germany", "Japan", "Brazil", "Canada", "Egypt", "Kenya", "Australia", "Chile", "Peru", "Spain", "Italy"]
# ChatML, with the last message's content trimmed (a template that treats the final turn specially): a prompt
# whose last message ends in whitespace is then not a prefix of prompt + completion.
LAST_TRIMMED = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if loop.last %}{{ m['content'] | trim }}{% else %}{{ m['content'] }}{% endif %}"
    "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}<call>{{ c['function']['name'] }}{{ c['function']['arguments'] | tojson }}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _message(role: str, content: str, calls: list[dict[str, str]] | None = None, call_id: str | None = None) -> dict[str, Any]:
    return {"role": role, "content": content, "tool_calls": calls or [], "tool_call_id": call_id}


def _call(call_id: str, country: str, column: str) -> dict[str, str]:
    return {"id": call_id, "name": "lookup", "arguments": json.dumps({"table": "countries", "key": country, "column": column})}


def step_pair(i: int, country: str) -> dict[str, Any]:
    """A step pair after one lookup: chosen answers from the result, rejected looks up the wrong column again."""
    context = [
        _message("system", "You answer questions with tools."),
        _message("user", f"What is the capital of {country}? (task {i})"),
        _message("assistant", "", [_call(f"c{i}", country, "capital")]),
        _message("tool", f"Capital{i}", call_id=f"c{i}"),
    ]
    chosen = [_message("assistant", f"The capital is Capital{i}.")]
    rejected = [_message("assistant", "", [_call(f"d{i}", country, "population")])]
    return {
        "prompt": render_messages(context), "chosen": render_messages(chosen), "rejected": render_messages(rejected),
        "context": context, "chosen_messages": chosen, "rejected_messages": rejected, "tools": TOOLS,
        "kind": "step_pair", "task_group": f"countries:{country}",
        "trajectory": {"task_id": f"tools-{i:04d}", "env_key": "{}", "chosen_trajectory_id": f"t{i}/a0",
                       "rejected_trajectory_id": f"t{i}/a1", "divergence_step": 4, "chosen_outcome": 1.0, "rejected_outcome": 0.0},
        "chosen_score": 1.0, "rejected_score": 0.0,
    }


def agent_frame() -> pl.DataFrame:
    """clean_frame() with its rows 28..39 (synthetic, first domain) made step pairs; splits, sources, domains kept."""
    frame = clean_frame()
    rows = frame.to_dicts()
    for n, at in enumerate(AGENT_ROWS):
        rows[at] = {**rows[at], **step_pair(at, COUNTRIES[n])}
    return with_record_id(conform(pl.DataFrame(rows, schema=POLARS_SCHEMA)))


def edit_messages(frame: pl.DataFrame, row: int, column: str, change: Any) -> pl.DataFrame:
    """Apply change(messages) to one row's message list (the rendered text columns are left as they were)."""
    values = frame[column].to_list()
    values[row] = change([dict(m) for m in values[row]])
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def write_tokenizer(folder: Path, template: str = LAST_TRIMMED) -> Path:
    """A small word-level tokenizer with `template` as its chat template, saved as a transformers folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    fast.chat_template = template
    fast.save_pretrained(str(folder))
    return folder
