"""The one real `prefect server` of a test session, and the ways tests talk to it.

The fixture `prefect_server` (session scope, registered for every folder by tests/conftest.py) starts
`prefect server start` on a loopback port with a temporary PREFECT_HOME, waits for /api/health, and stops the
server's whole process group in teardown, whether the tests passed or not. Flow runs in child processes reach it
through `PrefectServer.env` (or just PREFECT_API_URL = `.url`); flows run in the test process use `in_process`.

Set PREFMIX_TEST_PREFECT_API (e.g. http://127.0.0.1:4200/api) to reuse a running server while developing; a
reused server keeps what earlier sessions left on it (artifacts, deployments), so CI always starts its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support import REPO
from tests.support.processes import TIMINGS, free_port, start, stop, tail

PREFECT = str(Path(sys.executable).parent / "prefect")
STARTUP_TIMEOUT_S = 240


@dataclass
class PrefectServer:
    url: str  # PREFECT_API_URL, ending in /api
    home: Path  # PREFECT_HOME of the server and of every process started with `env`
    env: dict[str, str]  # os.environ plus the settings that point a child process (CLI, worker) at this server
    logs: Path  # a folder for the server's log and for the logs of processes tests start next to it
    startup_s: float

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env={**self.env, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)


def client_env(home: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        # Workers and the scheduler poll often, so deployment tests do not wait on the defaults.
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PYTHONPATH": str(REPO),
    }


@contextlib.contextmanager
def running_prefect_server(home: Path, logs: Path, timeout: float = STARTUP_TIMEOUT_S,
                           database_url: str | None = None) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port; yields once /api/health answers. The server keeps its
    database in SQLite under `home`, or at `database_url` (e.g. postgresql+asyncpg://user@host:port/db)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = client_env(home, url)
    log = logs / "server.log"
    started = time.monotonic()
    database = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
    proc = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 {**env, "PREFECT_API_URL": "", **database}, log)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited: {tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > started + timeout:
                pytest.fail(f"prefect server did not answer in {timeout:.0f} s: {tail(log)}")
            time.sleep(0.5)
        key = "prefect_server_postgres_startup_s" if database_url else "prefect_server_startup_s"
        TIMINGS[key] = round(time.monotonic() - started, 1)
        yield PrefectServer(url, home, env, logs, TIMINGS[key])
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The session's real Prefect server (one for every test folder)."""
    home = tmp_path_factory.mktemp("prefect-home")
    logs = tmp_path_factory.mktemp("prefect-logs")
    reuse = os.environ.get("PREFMIX_TEST_PREFECT_API")
    if reuse:
        yield PrefectServer(reuse, home, client_env(home, reuse), logs, 0.0)
        return
    with running_prefect_server(home, logs) as server:
        yield server


@contextlib.contextmanager
def prefect_client(server: PrefectServer) -> Iterator[Any]:
    """A sync Prefect client on the test server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        with get_client(sync_client=True) as client:
            yield client


@contextlib.contextmanager
def in_process(server: PrefectServer) -> Iterator[None]:
    """Flows run in the test process talk to the test server (logs stay local: the server stops first)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url, PREFECT_LOGGING_TO_API_ENABLED: False}):
        yield


def wait_for_flow_run(server: PrefectServer, flow_run_id: str, timeout: float = 600) -> Any:
    """Poll the API until the flow run is final; returns the FlowRun."""
    from uuid import UUID

    deadline = time.monotonic() + timeout
    with prefect_client(server) as client:
        while True:
            run = client.read_flow_run(UUID(flow_run_id))
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run_id} still {run.state_name} after {timeout} s")
            time.sleep(1)
