"""The gate's agent-row checks beyond one fault per check (tests/validators/test_gate.py has those): a clean batch
of step pairs passes all of them under a real chat template, a task group leaks against an earlier published
batch, tool output in a step pair's completion, benchmark task files, and what each says when it cannot apply."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefmix.config import BenchmarkTasks, Config, Teacher
from prefmix.errors import InputError
from prefmix.validators.gate import run_gate
from prefmix.validators.preflight import check as preflight
from tests.support import REPO
from tests.validators.agent_batches import AGENT_ROWS, agent_frame, edit_messages, write_tokenizer
from tests.validators.batches import clean_frame, write_batch

AGENT = ("tool_linking", "task_group_split", "chat_template_prefix", "benchmark_overlap")


def config(model_dir: Path | None = None) -> Config:
    cfg = Config()
    cfg.gate.data_docs = False
    if model_dir is not None:
        cfg.teachers = [Teacher(name="t", model="t", endpoints=["http://127.0.0.1:1/v1"], launch={"model_dir": str(model_dir)})]
    return cfg


def failed(result) -> list[str]:
    return [c.name for c in result.checks if not c.success]


@pytest.mark.parametrize("teacher", ["tiny-teacher", "small-teacher"])
def test_clean_step_pairs_pass_under_the_teachers_chat_templates(teacher: str, tmp_path: Path) -> None:
    folder = REPO / ".prefmix" / teacher
    if not (folder / "tokenizer_config.json").is_file():
        pytest.skip(f"{folder} is not built (make setup)")
    result = run_gate(config(folder), write_batch(tmp_path, agent_frame()))
    assert result.verdict == "pass", [c.message for c in result.checks if not c.success]
    check = result.check("chat_template_prefix")
    assert check.observed["rows_checked"] == len(AGENT_ROWS) and check.observed["rows"] == 0
    assert result.check("tool_linking").observed["rows_checked"] == len(AGENT_ROWS)
    assert result.check("task_group_split").observed["task_groups"] == len(AGENT_ROWS)


def test_a_task_group_in_eval_of_an_earlier_batch_fails_in_train_now(tmp_path: Path) -> None:
    earlier = agent_frame()
    evals = earlier.filter((pl.col("kind") == "step_pair") & (pl.col("split") == "eval"))["task_group"].to_list()
    write_batch(tmp_path, earlier.with_columns(split=pl.when(pl.col("task_group").is_in(evals)).then(pl.lit("eval"))
                                                .otherwise(pl.col("split"))), batch_id="v1", area="batches")
    now = agent_frame().with_columns(split=pl.when(pl.col("task_group") == evals[0]).then(pl.lit("train")).otherwise(pl.col("split")))
    result = run_gate(config(), write_batch(tmp_path, now, batch_id="v2"))
    assert failed(result) == ["task_group_split"]
    check = result.check("task_group_split")
    assert check.observed["in_this_batch"] == 0 and check.observed["against_earlier_batches"] == 1
    assert check.samples == [{"task_group": evals[0], "split": "train", "earlier_split": "eval", "earlier_batch": "v1"}]


def test_tool_output_in_a_step_pair_completion_fails_tool_linking(tmp_path: Path) -> None:
    def leak(messages: list[dict]) -> list[dict]:
        call = messages[0]
        return [*messages, {"role": "tool", "content": "Paris", "tool_calls": [], "tool_call_id": "x"} if not call["tool_calls"]
                else {"role": "tool", "content": "Paris", "tool_calls": [], "tool_call_id": call["tool_calls"][0]["id"]}]

    frame = edit_messages(agent_frame(), AGENT_ROWS[3], "rejected_messages", leak)
    result = run_gate(config(), write_batch(tmp_path, frame))
    assert failed(result) == ["tool_linking"]
    observed = result.check("tool_linking").observed
    assert observed["tool_output_in_completion"] == 1 and observed["rows"] == 1


def test_benchmark_task_files(tmp_path: Path) -> None:
    task = f"tools-{AGENT_ROWS[0]:04d}"
    (tmp_path / "a.txt").write_text(f"swe-1\n{task}\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"instance_id": "countries:Germany"}) + "\n")
    pl.DataFrame({"task_id": ["other"]}).write_parquet(tmp_path / "c.parquet")
    cfg = config()
    cfg.agent.benchmark_tasks = BenchmarkTasks(files=[str(tmp_path / n) for n in ("a.txt", "b.jsonl", "c.parquet")])
    result = run_gate(cfg, write_batch(tmp_path, agent_frame()))
    check = result.check("benchmark_overlap")
    assert failed(result) == ["benchmark_overlap"] and check.observed == {"rows": 2, "tasks": 2, "benchmark_tasks": 4}
    assert {s["task_group"] for s in check.samples} == {"countries:France", "countries:Germany"}  # by task id, by group


@pytest.mark.parametrize("name, text, message", [
    ("missing.txt", None, "benchmark task file not found"),
    ("ids.json", '{"a": 1}', "expected a JSON list of task id strings"),
    ("ids.jsonl", '{"id": 1}\n', "line 1: expected an object with a string task_id or instance_id"),
    ("ids.csv", "a,b\n", "unknown benchmark task file '.csv'"),
])
def test_a_bad_benchmark_file_is_one_line_before_the_gate(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    cfg = config()
    cfg.agent.benchmark_tasks = BenchmarkTasks(files=[str(tmp_path / name)])
    with pytest.raises(InputError, match=message) as raised:
        preflight(cfg)
    assert str(tmp_path / name) in str(raised.value) and "\n" not in str(raised.value)


def test_without_agent_rows_or_a_template_the_checks_say_why_they_do_not_apply(tmp_path: Path) -> None:
    plain = run_gate(config(), write_batch(tmp_path / "plain", clean_frame()))
    notes = {name: plain.check(name).message for name in AGENT}
    assert all(plain.check(name).success and plain.check(name).observed is None for name in AGENT)
    assert "not applicable: no agent rows" in notes["tool_linking"]
    assert "not applicable: no rows with a task group" in notes["task_group_split"]
    assert "not applicable: no rows with messages" in notes["chat_template_prefix"]
    assert "not applicable: no benchmark tasks listed" in notes["benchmark_overlap"]
    agent = run_gate(config(), write_batch(tmp_path / "agent", agent_frame()))
    assert "not applicable: no teacher is configured" in agent.check("chat_template_prefix").message
    cfg = config()
    cfg.teachers = [Teacher(name="t", model="t", endpoints=["http://127.0.0.1:1/v1"])]
    served = run_gate(cfg, write_batch(tmp_path / "served", agent_frame()))
    assert "not applicable: no teacher has a launch.model_dir" in served.check("chat_template_prefix").message
    empty = run_gate(config(tmp_path / "nothing"), write_batch(tmp_path / "agent2", agent_frame()))
    assert "holds no tokenizer" in empty.check("chat_template_prefix").message


def test_the_template_check_is_capped_at_max_rows(tmp_path: Path) -> None:
    cfg = config(write_tokenizer(tmp_path / "tok"))
    cfg.gate.chat_template.max_rows = 5
    check = run_gate(cfg, write_batch(tmp_path, agent_frame())).check("chat_template_prefix")
    assert check.observed["rows_checked"] == 5 and check.observed["rows_with_messages"] == len(AGENT_ROWS)
    assert "the 5 rows with the lowest record_id of 12" in check.message
