"""`prefmix run generate` and `prefmix teacher` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefmix.cli import main
from tests.generators.helpers import write_config
from tests.support.cli import prefmix
from tests.support.prefect_server import PrefectServer


def test_generate_bad_prompt_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/v1", 4)
    pl.DataFrame({"prompt": ["ok", ""], "domain": ["law", "law"]}).write_parquet(tmp_path / "prompts.parquet")
    assert main(["run", "generate", "--config", str(cfg), "--run-id", "r1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"prefmix: error: {tmp_path}/prompts.parquet: row 1: column 'prompt' is empty; expected a prompt text"]
    assert not (tmp_path / "store" / "runs").exists()


def test_generate_bad_run_id_and_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/v1", 4)
    assert main(["run", "generate", "--config", str(cfg), "--run-id", "a/b"]) == 2
    assert "--run-id 'a/b'" in capsys.readouterr().err
    assert main(["run", "generate", "--config", str(cfg), "--set", "generation.strategy=vibes"]) == 2
    assert "generation.strategy" in capsys.readouterr().err


@pytest.mark.server
def test_unreachable_server_stops_with_exit_3(prefect_server: PrefectServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/v1", 30, retry={"max_attempts": 2, "base_delay_s": 0.0},
                       error_budget={"window": 10, "max_error_rate": 0.5})
    done = prefmix("run", "generate", "--config", str(cfg), "--run-id", "down", "--no-progress", env=prefect_server.env)
    assert done.returncode == 3
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prefmix: stopped: error rate") and "--run-id down" in err[0]


@pytest.mark.vllm
@pytest.mark.server
def test_generate_json_output(vllm_teacher, prefect_server: PrefectServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, vllm_teacher.base_url, 6)
    done = prefmix("run", "generate", "--config", str(cfg), "--run-id", "j1", "--limit", "5", "--json", env=prefect_server.env)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout)
    assert run["run_id"] == "j1" and run["summary"]["prompts_in"] == 5
    assert run["summary"]["records"] + sum(run["summary"]["rejections"].values()) == 5
    assert run["lineage"]["strategy"] == "pointwise"


def test_teacher_serve_needs_a_model_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teacher", "serve", "--model", str(tmp_path)]) == 2
    assert "not a model directory" in capsys.readouterr().err


@pytest.mark.vllm  # needs the teacher environment that builds the model
def test_teacher_build_tiny_reuses_a_built_model(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teacher", "build-tiny", str(tiny_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_model_dir)
