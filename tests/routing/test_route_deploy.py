"""The `route` deployment from prefect.yaml on the session's real Prefect server: its parameters, its two paused
schedules (a queue after the nightly, an hourly pull) read back through the API, and ad hoc runs of both actions
triggered with `prefmix trigger route` and run by a process worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from prefmix.routing import samples
from prefmix.routing.queue import Queue

from prefmix.records import to_arrow
from prefmix.store import write_parquet
from tests.routing.exports import fake_export
from tests.support.deployments import deployed_with_worker, run_completed
from tests.support.prefect_server import PrefectServer, prefect_client

pytestmark = pytest.mark.server

POOL = "prefmix-route-test-pool"
TIMEZONE = "Europe/Berlin"


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("route-deploy")
    pool, truth = samples.pool(samples.PoolSpec(n=200, seed=6))
    write_parquet(to_arrow(pool), root / "synthetic" / "run.parquet")
    samples.gold(20).write_parquet(root / "gold.parquet")
    store = root / "store"
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "route-deploy", "store": str(store), "domains": list(samples.DOMAINS),
        "human": {"shards": [{"glob": str(store / "routing" / "returned" / "*.parquet"), "layout": "judgments", "vendor": "label-studio"}]},
        "routing": {"candidates": [{"path": str(root / "synthetic")}], "gold": [{"path": str(root / "gold.parquet")}],
                    "budget": {"tasks": 20}, "min_per_domain": 1, "gold_share": 0.1},
    }))
    with deployed_with_worker(prefect_server, "route", POOL, config, TIMEZONE) as log:
        yield {"server": prefect_server, "config": config, "store": store, "root": root, "truth": truth, "log": log}


def test_route_deployment_has_its_parameters_and_two_paused_schedules(deployed: dict[str, Any]) -> None:
    with prefect_client(deployed["server"]) as client:
        found = client.read_deployment_by_name("route/route")
    assert found.parameters == {"config_path": str(deployed["config"]), "action": "queue", "to": "label-studio"}
    assert found.work_pool_name == POOL
    schedules = {s.slug: s for s in found.schedules}
    assert set(schedules) == {"route-queue-0330", "route-pull-hourly"}
    assert (schedules["route-queue-0330"].schedule.cron, schedules["route-queue-0330"].schedule.timezone) == ("30 3 * * *", TIMEZONE)
    assert schedules["route-pull-hourly"].schedule.cron == "0 * * * *"
    assert not any(s.active for s in schedules.values())  # a queue spends money: on only when someone resumes it
    assert schedules["route-pull-hourly"].parameters == {"action": "pull"}
    assert found.global_concurrency_limit is not None and found.global_concurrency_limit.limit == 1


def run(deployed: dict[str, Any], *params: str) -> Any:
    return run_completed(deployed["server"], "route", deployed["log"], *params)


def test_adhoc_queue_then_pull_through_the_worker(deployed: dict[str, Any]) -> None:
    out = deployed["root"] / "out"
    queue_run = run(deployed, "to=null", f"out={out}", "budget=16")
    assert queue_run.name == "route-queue"
    queues = list((deployed["store"] / "routing" / "queues").iterdir())
    assert len(queues) == 1
    queue = Queue.model_validate_json((queues[0] / "queue.json").read_text())
    assert len(queue.items) == 16 and (out / "label-studio-tasks.json").is_file()

    export = deployed["root"] / "export.json"
    tasks = json.loads((out / "label-studio-tasks.json").read_text())
    export.write_text(json.dumps(fake_export(queue, tasks, deployed["truth"])))
    pull_run = run(deployed, "action=pull", f"export={export}")
    assert pull_run.name == "route-pull"
    assert [p.name for p in (deployed["store"] / "routing" / "returned").iterdir()] == [f"{queue.queue_id}-001.parquet"]
    assert Path(deployed["store"] / "routing" / "agreement.json").is_file()
