"""The team setup on PostgreSQL: a `prefect server` whose database is PostgreSQL (started by the same function as
the session's SQLite server, with PREFECT_API_DATABASE_CONNECTION_URL), deployments from prefect.yaml, a worker,
a nightly run triggered through the API, and the ledger of that run on the same PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs, write_config
from tests.support.postgres import Postgres
from tests.support.prefect_server import PREFECT, PrefectServer, running_prefect_server, wait_for_flow_run
from tests.support.processes import start, stop, tail

pytestmark = [pytest.mark.server, pytest.mark.vllm, pytest.mark.postgres]

POOL = "prefmix-pg-pool"


@pytest.fixture(scope="module")
def pg_prefect(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    database = postgres.create_database("prefect")
    home = tmp_path_factory.mktemp("prefect-pg-home")
    logs = tmp_path_factory.mktemp("prefect-pg-logs")
    with running_prefect_server(home, logs, database_url=postgres.url(database, driver="asyncpg")) as server:
        server.database = database  # type: ignore[attr-defined]
        yield server


def test_nightly_deployment_runs_on_a_prefect_server_and_ledger_on_postgresql(
        pg_prefect: PrefectServer, postgres: Postgres, vllm_teacher: Any, tmp_path: Path) -> None:
    import psycopg

    from prefmix.lineage.ledger import Ledger

    ledger_url = postgres.url(postgres.create_database("ledger"))
    inputs = make_inputs(tmp_path, prompts=60, items=30)
    config = write_config(tmp_path, vllm_teacher.base_url, vllm_teacher.model_name, inputs, dataset="team",
                          generation__chunk_size=16, generation__sampling__max_tokens=12, human__calibration_sample=0,
                          lineage__ledger_url=ledger_url)
    server = pg_prefect
    pool = server.run(PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = server.run(PREFECT, "--no-prompt", "deploy", "--all",
                        env={"PREFMIX_CONFIG": str(config), "PREFMIX_TIMEZONE": "UTC", "PREFMIX_POOL": POOL})
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    worker_log = server.logs / "worker.log"
    worker = start([PREFECT, "worker", "start", "--pool", POOL, "--limit", "2"], server.env, worker_log)
    try:
        done = prefmix("trigger", "nightly", "--param", "run_date=2026-12-01", "--json", env=server.env)
        assert done.returncode == 0, done.stderr[-3000:]
        run = wait_for_flow_run(server, last_json(done.stdout)["id"], timeout=1200)
        assert run.state.is_completed(), f"{run.name}: {run.state_name} {run.state.message}\n{tail(worker_log)}"
    finally:
        stop(worker)

    # The flow run lives in the PostgreSQL database of the Prefect server.
    with psycopg.connect(f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}/{server.database}") as conn:  # type: ignore[attr-defined]
        names = [r[0] for r in conn.execute("SELECT name FROM flow_run WHERE name = 'nightly-2026-12-01'")]
        assert names == ["nightly-2026-12-01"]
    # The run's version is indexed in the ledger on PostgreSQL, and the audit commands read it there.
    store = tmp_path / "store"
    assert (store / "datasets" / "team" / "LATEST").read_text().strip() == "v1"
    assert [v["version"] for v in Ledger(ledger_url).versions("team")] == [1]
    assert not (store / "ledger.sqlite").exists()
    listed = prefmix("versions", "team", "--json", "--config", str(config), env=server.env)
    assert listed.returncode == 0, listed.stderr
    [version] = last_json(listed.stdout)
    manifest = json.loads((Path(version["path"]) / "manifest.json").read_text())
    assert manifest["dataset"]["version"] == 1
    record = __import__("polars").read_parquet(Path(version["path"]) / "data" / "*.parquet").row(0, named=True)
    traced = prefmix("lineage", "trace", record["record_id"], "--json", "--config", str(config), env=server.env)
    assert traced.returncode == 0, traced.stderr
    assert [(h["dataset"], h["version"]) for h in last_json(traced.stdout)["batches"]] == [("team", 1)]
