"""The `trajectories` deployment from prefect.yaml on the session's real Prefect server: triggered with
`prefmix trigger trajectories`, run by a process worker, it derives from the config's agent landing zone (or the
files given) exactly what `prefmix trajectories pairs` derives from the same files, and says where the rows are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest
import yaml

from tests.support.cli import last_json, prefmix
from tests.support.deployments import deployed_with_worker, run_completed
from tests.support.prefect_server import PrefectServer, prefect_client

pytestmark = pytest.mark.server

POOL = "prefmix-trajectories-test-pool"
DATA = Path(__file__).resolve().parents[1] / "data" / "trajectories"


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("trajectories-deploy")
    zone = root / "runs"
    zone.mkdir()
    for name in ("atif_runs.json", "runs.jsonl"):
        shutil.copy(DATA / name, zone / name)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "agents", "store": str(root / "store"), "domains": ["code"],
        "agent": {"shards": [{"path": str(zone), "vendor": "acme-agents"}], "rules": {"domain": "code", "seed": 3}},
    }))
    with deployed_with_worker(prefect_server, "trajectories", POOL, config, "UTC") as log:
        yield {"server": prefect_server, "config": config, "zone": zone, "store": root / "store", "log": log}


def run(deployed: dict[str, Any], *params: str) -> Any:
    return run_completed(deployed["server"], "trajectories", deployed["log"], *params)


def cli_pairs(files: list[Path], mode: str, out: Path) -> dict[str, Any]:
    done = prefmix("trajectories", "pairs", *map(str, files), "--mode", mode, "--seed", "3", "--domain", "code",
                   "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return last_json(done.stdout)


def test_step_pairs_from_the_landing_zone_match_the_cli(deployed: dict[str, Any], tmp_path: Path) -> None:
    with prefect_client(deployed["server"]) as client:
        found = client.read_deployment_by_name("trajectories/trajectories")
    assert found.parameters == {"config_path": str(deployed["config"]), "mode": "trajectory", "files": None}

    flow_run = run(deployed, "mode=step")
    assert flow_run.name == "trajectories-step-zones"
    made = sorted((deployed["store"] / "derived" / "trajectories").glob("step-*.parquet"))
    rows = [p for p in made if not p.name.endswith(".rejections.parquet")]
    assert len(rows) == 1
    expected = cli_pairs(sorted(deployed["zone"].iterdir()), "step", tmp_path / "cli.parquet")
    assert expected["reconciled"] and expected["rows_out"] > 0
    flow_rows, cli_rows = pl.read_parquet(rows[0]), pl.read_parquet(tmp_path / "cli.parquet")
    assert sorted(flow_rows["record_id"]) == sorted(cli_rows["record_id"])
    assert set(flow_rows["kind"]) == {"step_pair"}
    rejected = pl.read_parquet(rows[0].with_name(rows[0].stem + ".rejections.parquet"))
    assert rejected.height == expected["trajectories_rejected"]


def test_given_files_override_the_zone(deployed: dict[str, Any], tmp_path: Path) -> None:
    one = deployed["zone"] / "atif_runs.json"
    flow_run = run(deployed, "mode=trajectory", f"files={json.dumps([str(one)])}")
    assert flow_run.name == "trajectories-trajectory-1"
    expected = cli_pairs([one], "trajectory", tmp_path / "cli.parquet")
    made = [p for p in (deployed["store"] / "derived" / "trajectories").glob("trajectory-*.parquet")
            if not p.name.endswith(".rejections.parquet")]
    assert len(made) == 1 and pl.read_parquet(made[0]).height == expected["rows_out"]
