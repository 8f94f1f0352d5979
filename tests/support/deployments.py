"""Deployments from prefect.yaml on the session's Prefect server, a process worker that runs them, and flow runs
triggered through `prefmix trigger` as a user would."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from tests.support.cli import last_json, prefmix
from tests.support.prefect_server import PREFECT, PrefectServer, wait_for_flow_run
from tests.support.processes import start, stop, tail


@contextlib.contextmanager
def deployed_with_worker(server: PrefectServer, name: str, pool: str, config: Path, timezone: str,
                         limit: int = 2) -> Iterator[Path]:
    """Deploy `name` from prefect.yaml on `config` into a process pool and run a worker on it; yields its log."""
    made = server.run(PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite")
    assert made.returncode == 0, made.stdout + made.stderr
    deploy = server.run(PREFECT, "--no-prompt", "deploy", "--name", name,
                        env={"PREFMIX_CONFIG": str(config), "PREFMIX_TIMEZONE": timezone, "PREFMIX_POOL": pool})
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    log = server.logs / f"{name}-worker.log"
    worker = start([PREFECT, "worker", "start", "--pool", pool, "--limit", str(limit)], server.env, log)
    try:
        yield log
    finally:
        stop(worker)


def run_completed(server: PrefectServer, flow: str, worker_log: Path, *params: str) -> Any:
    """`prefmix trigger FLOW --param K=V ...`, then the flow run, which must complete (else the worker's log)."""
    done = prefmix("trigger", flow, *(p for kv in params for p in ("--param", kv)), "--json", env=server.env)
    assert done.returncode == 0, done.stderr[-3000:]
    flow_run = wait_for_flow_run(server, last_json(done.stdout)["id"])
    assert flow_run.state.is_completed(), f"{flow_run.state_name}: {flow_run.state.message}\n{tail(worker_log)}"
    return flow_run
