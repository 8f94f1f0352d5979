"""`prefmix gate BATCH` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from prefmix.cli import main
from prefmix.config import Config
from prefmix.validators.policy import CHECKS
from tests.validators.batches import clean_frame, write_batch


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFMIX_STORE", raising=False)  # --store must win in these tests


def _config() -> Config:
    config = Config()
    config.gate.data_docs = False
    return config


@pytest.fixture(scope="module")
def bad_frame() -> pl.DataFrame:
    frame = clean_frame()
    values = frame["rejected"].to_list()
    values[0] = frame["chosen"][0]
    return frame.with_columns(pl.Series("rejected", values))


def test_gate_quarantined_batch_fails_with_exit_1(tmp_path: Path, bad_frame: pl.DataFrame,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_batch(tmp_path, bad_frame, batch_id="bq", config=_config(), area="quarantine")
    assert main(["gate", "bq", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "chosen_differs" in out and "verdict: fail" in out
    assert (tmp_path / "quarantine" / "bq" / "report" / "summary.png").is_file()


def test_gate_staged_batch_json_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_batch(tmp_path, batch_id="bs", config=_config())
    assert main(["gate", "bs", "--store", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass" and len(result["checks"]) == len(CHECKS)
    assert result["report"]["data_docs"] is None  # the manifest's config turned Data Docs off


def test_gate_uses_the_manifest_config_unless_config_given(tmp_path: Path, bad_frame: pl.DataFrame,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    recorded = _config()
    recorded.gate.severity = {"chosen_differs": "warning"}
    write_batch(tmp_path, bad_frame, batch_id="bw", config=recorded, area="quarantine")
    assert main(["gate", "bw", "--store", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "warn"

    config_file = tmp_path / "strict.yaml"
    config_file.write_text(yaml.safe_dump({"store": str(tmp_path), "gate": {"data_docs": False}}))
    assert main(["gate", "bw", "--config", str(config_file), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failed_critical"] == ["chosen_differs"]


def test_unknown_batch_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "nope", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"prefmix: error: {tmp_path.resolve()}: no batch 'nope' in batches/, quarantine/ or staging/"]


def test_bad_recorded_config_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch_dir = write_batch(tmp_path, batch_id="bc", config=_config())
    manifest = json.loads((batch_dir / "manifest.json").read_text())
    manifest["config"]["gate"]["share_tolerance"] = 3
    (batch_dir / "manifest.json").write_text(json.dumps(manifest))
    assert main(["gate", "bc", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json:config: gate.share_tolerance:" in err[0]


def test_published_batch_is_not_regated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch_dir = write_batch(tmp_path, batch_id="bp", config=_config(), area="batches")
    assert main(["gate", "bp", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("batch 'bp' is published; prefmix gate re-runs staged or quarantined batches")
    assert not (batch_dir / "report").exists()
