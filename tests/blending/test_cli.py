"""`prefmix blend` end to end through the CLI entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import yaml

from prefmix.cli import main
from tests.support.records import records


def test_cli_blends_and_prints_the_summary(write: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    human = write("human", records(70, "human", "general", "h"))
    synthetic = write("synthetic", records(60, "synthetic", "general", "s", teacher="tiny"))
    cfg = tmp_path / "prefmix.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": str(tmp_path / "store"),
                "domains": ["general"],
                "human": {"shards": [{"path": str(human), "layout": "pairs"}]},
                "blend": {"ratios": {"human": 0.7, "synthetic": 0.3}},
            }
        )
    )
    code = main(["blend", "--config", str(cfg), "--synthetic", str(synthetic), "--batch-id", "cli-1", "--set", "blend.eval_fraction=0.1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "requested" in out and "achieved" in out and "dedup removed" in out
    staged = tmp_path / "store" / "staging" / "cli-1"
    assert (staged / "report" / "composition.png").exists()
    assert "composition.png" in out
    assert sorted(p.name for p in (staged / "data").iterdir())[0].startswith("eval-00000-of-")


def test_cli_errors_are_one_line_exit_2(write: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    human = write("human", records(10, "human", "general", "h"))
    cfg = tmp_path / "prefmix.yaml"
    cfg.write_text(yaml.safe_dump({"domains": ["general"], "blend": {"ratios": {"human": 0.7, "synthetic": 0.3}}}))
    code = main(["blend", "--config", str(cfg), "--human", str(human), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "source 'synthetic' is empty" in err
    code = main(["blend", "--config", str(cfg), "--human", str(human), "--set", "blend.ratios.human=2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "blend.ratios" in err
    assert not (tmp_path / "out").exists()
