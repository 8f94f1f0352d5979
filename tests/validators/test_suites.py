"""A team's own GX suite (tests/data/gate/team_suite.json, GX 1.x JSON as `ExpectationSuite.to_json_dict()`
writes it) runs on the batch's rows, in the gate's one GX validation, under the gate's severity policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from prefmix.config import Config
from prefmix.errors import ConfigError
from prefmix.validators.gate import GateResult, run_gate
from prefmix.validators.preflight import check as preflight
from tests.validators.batches import clean_frame, gate_config, write_batch

TEAM_SUITE = Path(__file__).parents[1] / "data" / "gate" / "team_suite.json"
AI_VOICE = "As an AI language model, I think the plan is fine."
REGEX_CHECK = "team_rlhf_rules:expect_column_values_to_not_match_regex[chosen]"


def config(tmp: Path, **gate: object) -> Config:
    suite = tmp / "team_suite.json"
    shutil.copy(TEAM_SUITE, suite)  # the file is used as the team exported it: not rewritten
    return gate_config(**{"suites": [str(suite)], **gate})


def ai_voiced(frame: pl.DataFrame, rows: tuple[int, ...] = (3, 44)) -> pl.DataFrame:
    values = frame["chosen"].to_list()
    for row in rows:
        values[row] = AI_VOICE
    return frame.with_columns(pl.Series("chosen", values))


def failed(result: GateResult) -> list[str]:
    return [c.name for c in result.checks if not c.success]


def test_a_clean_batch_passes_the_team_suite_and_every_expectation_is_a_check(tmp_path: Path) -> None:
    result = run_gate(config(tmp_path), write_batch(tmp_path, clean_frame()))
    assert result.verdict == "pass", [c.message for c in result.checks if not c.success]
    users = [c for c in result.checks if c.suite == "team_rlhf_rules"]
    assert [c.name for c in users] == [
        REGEX_CHECK,
        "team_rlhf_rules:expect_column_values_to_be_in_set[domain]",
        "team_rlhf_rules:expect_column_value_lengths_to_be_between[prompt]",
        "team_rlhf_rules:expect_table_row_count_to_be_between",
    ]
    # GX's own severity field decides: the prompt-length expectation is declared "warning" in the file.
    assert [c.severity for c in users] == ["critical", "critical", "warning", "critical"]
    assert json.loads(TEAM_SUITE.read_text()) == json.loads((tmp_path / "team_suite.json").read_text())


def test_a_violated_suite_quarantines_with_unexpected_rows_in_result_and_data_docs(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.gate.data_docs = True
    frame = ai_voiced(clean_frame())
    result = run_gate(cfg, write_batch(tmp_path, frame))
    assert result.verdict == "fail" and failed(result) == [REGEX_CHECK]
    assert result.failed_critical == [REGEX_CHECK]
    check = result.check(REGEX_CHECK)
    assert check.observed["unexpected_count"] == 2
    assert check.observed["partial_unexpected_list"] == [AI_VOICE, AI_VOICE]
    ids = {frame["record_id"][3], frame["record_id"][44]}
    assert {s["record_id"] for s in check.samples} == ids and all(s["chosen"] == AI_VOICE for s in check.samples)
    # One GX validation holds prefmix's checks and the team's expectations.
    stored = json.loads(Path(result.report.validation_json).read_text())
    by_check = {r["expectation_config"]["meta"]["check"]: r for r in stored["results"]}
    assert "pii_share" in by_check and by_check[REGEX_CHECK]["success"] is False
    assert by_check[REGEX_CHECK]["result"]["partial_unexpected_list"] == [AI_VOICE, AI_VOICE]
    # The Data Docs page of that one validation shows the expectation and its unexpected examples.
    pages = list((Path(result.report.data_docs or "").parent / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    # (GX renders the expectation by the description the team gave it.)
    assert "chosen answers never call themselves an AI language model" in page
    assert "As an AI language model, I think the plan is fine." in page
    assert "pii_share" in page
    html = Path(result.report.html or "").read_text()
    assert REGEX_CHECK in html and "As an AI language model" in html


def test_severity_from_config_mapping_and_meta(tmp_path: Path) -> None:
    batch_dir = write_batch(tmp_path, ai_voiced(clean_frame()))
    by_suite = run_gate(config(tmp_path, suite_severity={"team_rlhf_rules": "warning"}), batch_dir)
    assert by_suite.verdict == "warn" and by_suite.failed_warning == [REGEX_CHECK]
    by_check = run_gate(config(tmp_path, suite_severity={REGEX_CHECK: "off"}), batch_dir)
    assert by_check.verdict == "pass" and REGEX_CHECK not in [c.name for c in by_check.checks]
    suite = json.loads(TEAM_SUITE.read_text())
    expectation_id = suite["expectations"][0]["id"]
    by_id = run_gate(config(tmp_path, suite_severity={expectation_id: "warning"}), batch_dir)
    assert by_id.verdict == "warn"
    suite["expectations"][0]["meta"]["gate_severity"] = "warning"
    meta_file = tmp_path / "meta_suite.json"
    meta_file.write_text(json.dumps(suite))
    cfg = config(tmp_path)
    cfg.gate.suites = [str(meta_file)]
    assert run_gate(cfg, batch_dir).verdict == "warn"


def test_a_legacy_0x_suite_file_drops_in(tmp_path: Path) -> None:
    legacy = {
        "expectation_suite_name": "old_team_suite",
        "expectations": [{"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "prompt"}, "meta": {}}],
        "meta": {"great_expectations_version": "0.18.12"},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy))
    cfg = config(tmp_path)
    cfg.gate.suites = [str(path)]
    result = run_gate(cfg, write_batch(tmp_path, clean_frame()))
    assert result.check("old_team_suite:expect_column_values_to_not_be_null[prompt]").success


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"gate.suites\[0\]: .*missing.json: suite file not found"),
        ("not json", r"gate.suites\[0\]: .*: not a JSON file"),
        ('{"name": "x"}', r"gate.suites\[0\]: .*: not a Great Expectations suite"),
        ('{"name": "x", "expectations": [{"type": "expect_column_values_to_be_purple", "kwargs": {"column": "chosen"}}]}',
         r"gate.suites\[0\]: .*expectations\[0\] \(expect_column_values_to_be_purple\): .*not found"),
        ('{"name": "x", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 1}}]}',
         r"gate.suites\[0\]: .*expectations\[0\] \(expect_column_values_to_be_between\): .*column"),
    ],
)
def test_a_bad_suite_file_is_a_one_line_config_error_in_preflight(tmp_path: Path, content: str | None, message: str) -> None:
    cfg = Config()
    path = tmp_path / ("missing.json" if content is None else "suite.json")
    if content is not None:
        path.write_text(content)
    cfg.gate.suites = [str(path)]
    with pytest.raises(ConfigError, match=message) as raised:
        preflight(cfg)
    assert "\n" not in str(raised.value)


def test_suite_severity_must_name_something_real(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gate.suite_severity.nope: not a suite, check or expectation id"):
        preflight(config(tmp_path, suite_severity={"nope": "warning"}))
    with pytest.raises(ConfigError, match=r"gate.suite_severity.x: no gate.suites configured"):
        cfg = Config()
        cfg.gate.suite_severity = {"x": "off"}
        preflight(cfg)
