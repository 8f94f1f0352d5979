"""The gate on real Parquet batches with real GX: one violation per check, policy, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow as pa
import pytest

from prefmix.config import BenchmarkTasks, Config, Teacher
from prefmix.errors import ConfigError, InputError
from prefmix.records import to_arrow
from tests.validators.agent_batches import AGENT_ROWS, agent_frame, edit_messages, write_tokenizer
from tests.validators.batches import DOMAINS, clean_frame, write_batch
from tests.validators.batches import gate_config as config
from prefmix.validators.gate import GateFacts, GateResult, run_gate
from prefmix.validators.metrics import PII_PATTERN, PII_PREFILTER
from prefmix.validators.policy import CHECKS, DEFAULT_SEVERITY


def set_cell(frame: pl.DataFrame, row: int, column: str, value: object) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def failed(result: GateResult) -> list[str]:
    return [c.name for c in result.checks if not c.success]


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return clean_frame()


def test_clean_batch_passes(tmp_path: Path, clean: pl.DataFrame) -> None:
    result = run_gate(config(), write_batch(tmp_path, clean))
    assert result.verdict == "pass", [c.message for c in result.checks if not c.success]
    assert [c.name for c in result.checks] == list(CHECKS)
    assert result.failed_critical == [] and result.failed_warning == []
    assert result.check("row_count").observed == 160
    assert result.check("source_share").observed == {"human": 0.7, "synthetic": 0.3}
    assert result.check("human_agreement").observed == pytest.approx(0.8)


def _schema_violation(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
    table = to_arrow(frame)
    index = table.schema.get_field_index("chosen_score")
    table = table.set_column(index, pa.field("chosen_score", pa.string()), table["chosen_score"].cast(pa.string()))
    return write_batch(tmp, table), config(), None


def _frame_case(mutate: Callable[[pl.DataFrame], pl.DataFrame], cfg: Config | None = None, facts: GateFacts | None = None):
    def build(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
        return write_batch(tmp, mutate(frame)), cfg or config(), facts

    return build


def _shares_by_domain(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
    # finance 80% human, general 60%: each domain is off, the overall share is still exactly 70%.
    return write_batch(tmp, clean_frame(human_shares={"finance": 0.8, "general": 0.6})), config(), None


def _overall_ratio(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
    # Every domain one human row short of 70% (27 of 40: within the one row of rounding a domain's quota may
    # take), all in the same direction: the whole batch is 2.5 points off, which no rounding explains.
    return write_batch(tmp, clean_frame(human_shares={d: 27 / 40 for d in DOMAINS})), config(), None


def _missing_domain(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
    cfg = config()
    cfg.domains = [*DOMAINS, "code"]
    return write_batch(tmp, frame), cfg, None


def _leak(frame: pl.DataFrame) -> pl.DataFrame:
    eval_prompt = frame.filter(pl.col("split") == "eval")["prompt"][0]
    train_row = frame.with_row_index().filter(pl.col("split") == "train")["index"][0]
    return set_cell(frame, train_row, "prompt", "  " + eval_prompt.replace(" ", "  "))  # same prompt, other spacing


def _pii(frame: pl.DataFrame) -> pl.DataFrame:
    for row, text in enumerate(["mail me at jane.doe@example.com", "call 555-123-4567 today", "my SSN is 123-45-6789",
                                "ring (212) 555-0100 now"]):
        frame = set_cell(frame, row, "chosen", frame["chosen"][row] + " " + text)
    return frame


SYNTHETIC_ROW = 35  # rows 28..39 of the first domain are synthetic
HUMAN_ROWS = [0, 1, 2, 40, 41, 42, 80, 81, 82, 120, 121]  # rows 0..27 of each domain are human


def _broken_text(frame: pl.DataFrame) -> pl.DataFrame:
    # What a random-weight teacher writes: a bell, a C1 control and a replacement character.
    frame = set_cell(frame, 3, "chosen", frame["chosen"][3] + " \x07 ok")
    return set_cell(frame, 5, "rejected", "\ufffd\x85" + frame["rejected"][5])


def _truncated(frame: pl.DataFrame) -> pl.DataFrame:
    values = frame["generation"].to_list()
    for row, value in enumerate(values):
        if value is not None:
            value["finish_reasons"] = ["length", "stop"] if row == SYNTHETIC_ROW else ["stop", "length"]
    return frame.with_columns(pl.Series("generation", values, dtype=frame.schema["generation"]))


def _loops(frame: pl.DataFrame) -> pl.DataFrame:
    for row in HUMAN_ROWS[:5]:
        frame = set_cell(frame, row, "chosen", "Let me check that for you. " * 6 + "Done.")
    return frame


def _echoes(frame: pl.DataFrame) -> pl.DataFrame:
    for row in HUMAN_ROWS[:5]:
        frame = set_cell(frame, row, "chosen", frame["prompt"][row] + " " + frame["chosen"][row])
    return frame


def _refuses(frame: pl.DataFrame) -> pl.DataFrame:
    for row in HUMAN_ROWS[:9]:
        frame = set_cell(frame, row, "chosen", "I'm sorry, but I can't help with that request, it is against my guidelines.")
    return frame


def _verbose_judge(frame: pl.DataFrame) -> pl.DataFrame:
    # The synthetic judge prefers long answers: its rejected answers are a fraction of the chosen ones.
    return frame.with_columns(
        pl.when(pl.col("source") == "synthetic").then(pl.lit("Weak answer.")).otherwise(pl.col("rejected")).alias("rejected")
    )


def _paraphrased(frame: pl.DataFrame) -> pl.DataFrame:
    # Three human prompts come back, one word longer, as synthetic prompts of other rows.
    for human, synthetic in ((0, 30), (40, 70), (80, 110)):
        frame = set_cell(frame, synthetic, "prompt", frame["prompt"][human] + " please")
    return frame


def _contaminated(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
    eval_set = tmp / "eval.jsonl"
    lines = [{"prompt": frame["prompt"][7]}, {"prompt": "an unrelated benchmark question about prime numbers"}]
    eval_set.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cfg = config()
    cfg.gate.contamination.eval_sets = [str(eval_set)]
    return write_batch(tmp, frame), cfg, None

def _agent_case(mutate: Callable[[pl.DataFrame], pl.DataFrame], cfg: Callable[[Path], Config] | None = None):
    """A batch with step pairs (tests/validators/agent_batches.py), one fault injected by `mutate`."""

    def build(tmp: Path, frame: pl.DataFrame) -> tuple[Path, Config, GateFacts | None]:
        return write_batch(tmp, mutate(agent_frame())), cfg(tmp) if cfg else config(), None

    return build


def _templated(tmp: Path) -> Config:
    """A config whose teacher's model folder holds a chat template (served elsewhere: nothing is launched)."""
    cfg = config()
    folder = write_tokenizer(tmp / "teacher")
    cfg.teachers = [Teacher(name="t", model="t", endpoints=["http://127.0.0.1:1/v1"], launch={"model_dir": str(folder)})]
    return cfg


def _unlinked(frame: pl.DataFrame) -> pl.DataFrame:
    # the tool result names a call nobody made
    return edit_messages(frame, AGENT_ROWS[0], "context", lambda m: [*m[:3], {**m[3], "tool_call_id": "nobody"}])


def _group_in_both_splits(frame: pl.DataFrame) -> pl.DataFrame:
    train = frame.with_row_index().filter((pl.col("kind") == "step_pair") & (pl.col("split") == "train"))
    evals = frame.with_row_index().filter((pl.col("kind") == "step_pair") & (pl.col("split") == "eval"))
    return set_cell(frame, evals["index"][0], "task_group", train["task_group"][0])  # another task of the same group


def _trailing_space(frame: pl.DataFrame) -> pl.DataFrame:
    # the last prompt message ends in spaces: the template trims it only while it is the last message
    return edit_messages(frame, AGENT_ROWS[1], "context", lambda m: [*m[:3], {**m[3], "content": m[3]["content"] + "  "}])


def _benchmarked(tmp: Path) -> Config:
    cfg = config()
    cfg.gate.benchmark_tasks = BenchmarkTasks(ids=["swe-bench/x-1", f"tools-{AGENT_ROWS[2]:04d}"])
    return cfg


CASES = {
    "row_count": _frame_case(lambda f: f, config(min_rows=1000)),
    "schema": _schema_violation,
    "non_empty_text": _frame_case(lambda f: set_cell(f, 3, "chosen", "   ")),
    "chosen_differs": _frame_case(lambda f: set_cell(f, 3, "rejected", f["chosen"][3])),
    "unique_record_id": _frame_case(lambda f: set_cell(f, 3, "record_id", f["record_id"][4])),
    "text_length": _frame_case(lambda f: set_cell(f, 3, "chosen", "word " * 5000)),
    "score_range": _frame_case(lambda f: set_cell(f, 3, "chosen_score", 11.5)),
    "synthetic_margin": _frame_case(lambda f: set_cell(set_cell(f, SYNTHETIC_ROW, "chosen_score", 2.0), SYNTHETIC_ROW, "rejected_score", 5.0)),
    "source_share": _overall_ratio,
    "domain_source_share": _shares_by_domain,
    "domains_present": _missing_domain,
    "split_disjoint": _frame_case(_leak),
    "human_agreement": _frame_case(lambda f: f, config(min_agreement=0.5), GateFacts(human_agreement=0.31)),
    "judge_human": _frame_case(lambda f: f, config(min_judge_human=0.6), GateFacts(judge_human=0.4)),
    "pii_share": _frame_case(_pii),
    "text_integrity": _frame_case(_broken_text),
    "truncated_share": _frame_case(_truncated),
    "repetition": _frame_case(_loops),
    "echo": _frame_case(_echoes),
    "refusal_share": _frame_case(_refuses),
    "length_bias": _frame_case(_verbose_judge),
    "near_duplicates": _frame_case(_paraphrased),
    "contamination": _contaminated,
    "tool_linking": _agent_case(_unlinked),
    "task_group_split": _agent_case(_group_in_both_splits),
    "chat_template_prefix": _agent_case(_trailing_space, _templated),
    "benchmark_overlap": _agent_case(lambda f: f, _benchmarked),
}


def test_every_check_has_a_violation_case() -> None:
    assert set(CASES) == set(CHECKS)


@pytest.mark.parametrize("check", list(CASES))
def test_a_batch_violating_one_check_is_blocked_or_flagged(check: str, tmp_path: Path, clean: pl.DataFrame) -> None:
    batch_dir, cfg, facts = CASES[check](tmp_path, clean)
    result = run_gate(cfg, batch_dir, facts)
    assert failed(result) == [check], [c.message for c in result.checks if not c.success]
    severity = DEFAULT_SEVERITY[check]
    assert result.verdict == ("fail" if severity == "critical" else "warn")
    assert (result.failed_critical, result.failed_warning) == (([check], []) if severity == "critical" else ([], [check]))
    message = result.check(check).message
    assert message.startswith(f"{check}: FAILED, observed ")
    # The GX validation result holds the same verdict for that check.
    stored = json.loads(Path(result.report.validation_json).read_text())
    by_check = {r["expectation_config"]["meta"]["check"]: r["success"] for r in stored["results"]}
    assert by_check[check] is False and sum(not ok for ok in by_check.values()) == 1


def test_observed_values_name_the_problem(tmp_path: Path, clean: pl.DataFrame) -> None:
    batch_dir, cfg, _ = _schema_violation(tmp_path, clean)
    schema = run_gate(cfg, batch_dir).check("schema")
    assert schema.observed == ["part-00000.parquet: column chosen_score is string, expected double"]
    pii = run_gate(config(), write_batch(tmp_path / "pii", _pii(clean))).check("pii_share")
    assert pii.observed == {"rows": 4, "share": 0.025}
    batch_dir, cfg, _ = _shares_by_domain(tmp_path / "d", clean)
    shares = run_gate(cfg, batch_dir).check("domain_source_share")
    assert shares.observed["finance"] == {"human": 0.8, "synthetic": 0.2}
    assert "worst domain: " in shares.message


def test_pii_pattern_matches_kinds_and_not_plain_numbers() -> None:
    texts = ["write to a.b+c@mail.example.org", "+44 20 7946 0958", "(415) 555-2671", "SSN 078-05-1120",
             "in 2024 there were 1200 cases", "version 3.11.2 released", "call me maybe", "room 101-2023 rate"]
    hits = pl.Series(texts).str.contains(PII_PATTERN).to_list()
    assert hits == [True, True, True, True, False, False, False, False]
    # The prefilter is a superset of the pattern: whatever matches the pattern passes it.
    assert all(pl.Series(texts).filter(pl.Series(hits)).str.contains(PII_PREFILTER))


def test_severity_override_turns_fail_into_warn(tmp_path: Path, clean: pl.DataFrame) -> None:
    frame = set_cell(clean, 3, "rejected", clean["chosen"][3])
    batch_dir = write_batch(tmp_path, frame)
    assert run_gate(config(), batch_dir).verdict == "fail"
    result = run_gate(config(severity={"chosen_differs": "warning"}), batch_dir)
    assert result.verdict == "warn" and result.failed_warning == ["chosen_differs"]
    assert result.check("chosen_differs").severity == "warning"


def test_severity_off_drops_the_check(tmp_path: Path, clean: pl.DataFrame) -> None:
    batch_dir = write_batch(tmp_path, set_cell(clean, 3, "rejected", clean["chosen"][3]))
    result = run_gate(config(severity={"chosen_differs": "off"}), batch_dir)
    assert result.verdict == "pass" and "chosen_differs" not in [c.name for c in result.checks]


def test_warning_can_be_made_critical(tmp_path: Path, clean: pl.DataFrame) -> None:
    result = run_gate(config(min_agreement=0.5, severity={"human_agreement": "critical"}), write_batch(tmp_path, clean),
                      GateFacts(human_agreement=0.2))
    assert result.verdict == "fail" and result.failed_critical == ["human_agreement"]


def test_unknown_severity_check_is_a_config_error(tmp_path: Path, clean: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"gate.severity.chosen_differ: unknown check"):
        run_gate(config(severity={"chosen_differ": "warning"}), write_batch(tmp_path, clean))


def test_unknown_agreement_fails_only_when_a_threshold_is_set(tmp_path: Path, clean: pl.DataFrame) -> None:
    no_annotation = clean.with_columns(pl.lit(None).alias("annotation"))
    batch_dir = write_batch(tmp_path, no_annotation)
    assert run_gate(config(), batch_dir).check("human_agreement").success
    check = run_gate(config(min_agreement=0.5), batch_dir).check("human_agreement")
    assert not check.success and "no agreement figure available" in check.message


def test_reports_are_written(tmp_path: Path, clean: pl.DataFrame) -> None:
    cfg = config()
    cfg.gate.data_docs = True
    batch_dir = write_batch(tmp_path, set_cell(clean, 3, "rejected", clean["chosen"][3]))
    result = run_gate(cfg, batch_dir)
    index = Path(result.report.data_docs or "")
    assert index == batch_dir / "report" / "gx" / "index.html" and index.is_file()
    pages = list((index.parent / "validations").rglob("*.html"))
    assert len(pages) == 1 and "chosen_differs" in pages[0].read_text()
    png = Path(result.report.summary_png)
    assert png == batch_dir / "report" / "summary.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads(Path(result.report.validation_json).read_text())
    assert stored["success"] is False and len(stored["results"]) == len(CHECKS)
    # A second run replaces the docs of the first; it does not pile up earlier batches.
    run_gate(cfg, write_batch(tmp_path, clean, batch_id="b2"))
    again = run_gate(cfg, batch_dir)
    assert len(list((Path(again.report.data_docs or "").parent / "validations").rglob("*.html"))) == 1


def test_no_data_files_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "b" / "data").mkdir(parents=True)
    with pytest.raises(InputError, match=r"b/data: no \.parquet files to gate"):
        run_gate(config(), tmp_path / "b")


def test_corrupt_parquet_is_an_input_error_naming_the_file(tmp_path: Path, clean: pl.DataFrame) -> None:
    batch_dir = write_batch(tmp_path, clean)
    (batch_dir / "data" / "part-00001.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"part-00001\.parquet: not a readable Parquet file"):
        run_gate(config(), batch_dir)
    assert not (batch_dir / "report").exists()


def test_several_files_and_missing_columns(tmp_path: Path, clean: pl.DataFrame) -> None:
    batch_dir = write_batch(tmp_path, clean.slice(0, 80))
    table = to_arrow(clean.slice(80)).drop_columns(["origin_uri"])
    from prefmix.store import write_parquet

    write_parquet(table, batch_dir / "data" / "part-00001.parquet")
    result = run_gate(config(), batch_dir)
    assert result.check("row_count").observed == 160
    assert failed(result) == ["schema"]
    assert result.check("schema").observed == ["part-00001.parquet: column origin_uri is missing"]


def _with_expected(frame: pl.DataFrame, rows: dict[int, tuple[float, float, float, float]]) -> pl.DataFrame:
    """Set (chosen_score, rejected_score, chosen_expected, rejected_expected) of some synthetic rows."""
    values = frame["generation"].to_list()
    for row, (cs, rs, ce, re) in rows.items():
        frame = set_cell(set_cell(frame, row, "chosen_score", cs), row, "rejected_score", rs)
        values[row] = {**values[row], "chosen_expected": ce, "rejected_expected": re}
    return frame.with_columns(pl.Series("generation", values, dtype=frame.schema["generation"]))


def test_synthetic_margin_counts_an_expected_tie_break_by_its_expected_gap(tmp_path: Path, clean: pl.DataFrame) -> None:
    cfg = config(min_margin=1.0)
    cfg.generation.expected_margin = 0.1
    # 35: a tie the judge broke 0.4 apart (kept); 36: a tie broken by 0.05 (below expected_margin); 37: an integer
    # margin 0.5 (below min_margin, the expected gap does not rescue it)
    frame = _with_expected(clean, {35: (6.0, 6.0, 6.5, 6.1), 36: (6.0, 6.0, 6.15, 6.1), 37: (6.5, 6.0, 6.9, 6.0)})
    check = run_gate(cfg, write_batch(tmp_path / "a", frame)).check("synthetic_margin")
    assert check.observed == {"rows_below": 2, "min_margin": 0.0, "ties_broken_by_expected": 1}
    cfg.generation.tie_break = "none"  # no tie-breaking: a tie is a margin of 0 like any other
    check = run_gate(cfg, write_batch(tmp_path / "b", frame)).check("synthetic_margin")
    assert check.observed["rows_below"] == 3 and check.observed["ties_broken_by_expected"] == 0


def test_synthetic_margin_leaves_agent_rows_to_their_own_checks(tmp_path: Path) -> None:
    frame = agent_frame()
    agent_rows = frame.filter(pl.col("kind").is_in(["trajectory_pair", "step_pair"]) & (pl.col("source") == "synthetic")).height
    assert agent_rows > 0
    # outcome rewards 1 and 0.5: a margin of 0.5, below min_margin 1, that the rule does not apply to
    frame = frame.with_columns(pl.when(pl.col("kind").is_in(["trajectory_pair", "step_pair"]))
                               .then(pl.lit(0.5)).otherwise(pl.col("rejected_score")).alias("rejected_score"),
                               pl.when(pl.col("kind").is_in(["trajectory_pair", "step_pair"]))
                               .then(pl.lit(1.0)).otherwise(pl.col("chosen_score")).alias("chosen_score"))
    check = run_gate(config(min_margin=1.0), write_batch(tmp_path, frame)).check("synthetic_margin")
    assert check.success and check.observed["rows_below"] == 0  # the single-turn rows all have margins >= 2
    frame = set_cell(frame, 150, "rejected_score", 8.95)  # a single-turn synthetic row (4th domain) with margin < 1
    check = run_gate(config(min_margin=1.0), write_batch(tmp_path / "again", frame)).check("synthetic_margin")
    assert check.observed["rows_below"] == 1
