"""A real Prefect server, work pool, worker, deployments and Ray head for the deploy tests.

Every process is started in its own session and its whole process group is
stopped in teardown, whether the tests passed or not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.deploy.proxy import CountingProxy

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
RAY = str(BIN / "ray")
TIMINGS: dict[str, float] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], grace: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process group we started (SIGTERM), then SIGKILL what is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except FileNotFoundError:
        return ""


@dataclass
class PrefectServer:
    url: str
    home: Path
    env: dict[str, str]
    logs: Path
    startup_s: float
    pool: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env={**self.env, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-home")
    logs = tmp_path_factory.mktemp("prefect-logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PYTHONPATH": str(REPO),
    }
    started = time.monotonic()
    proc = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 {**env, "PREFECT_API_URL": ""}, logs / "server.log")
    try:
        deadline = started + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited: {tail(logs / 'server.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server did not answer in 180 s: {tail(logs / 'server.log')}")
            time.sleep(0.5)
        TIMINGS["prefect_server_startup_s"] = round(time.monotonic() - started, 1)
        yield PrefectServer(url, home, env, logs, TIMINGS["prefect_server_startup_s"])
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def teacher_proxies(vllm_teacher: Any) -> Iterator[tuple[CountingProxy, CountingProxy]]:
    """Two endpoints for the one real vLLM server; each counts the requests it forwards."""
    with CountingProxy(vllm_teacher.base_url) as a, CountingProxy(vllm_teacher.base_url) as b:
        yield a, b


@contextlib.contextmanager
def prefect_client(server: PrefectServer) -> Iterator[Any]:
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


@dataclass
class RayHead:
    address: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """A one-node Ray cluster on loopback (2 CPUs), stopped with its whole process group."""
    port = free_port()
    # Ray puts Unix sockets under its temp dir; keep the path short.
    temp = Path(f"/tmp/prefmix-ray-{os.getpid()}")
    logs = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    proc = start([RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                  "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                  f"--temp-dir={temp}", "--object-store-memory=100000000"], env, logs / "ray.log")
    address = f"127.0.0.1:{port}"
    try:
        deadline = started + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray head exited: {tail(logs / 'ray.log')}")
            status = subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True,
                                    timeout=60)
            if status.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"ray head did not come up in 120 s: {tail(logs / 'ray.log')}")
            time.sleep(1)
        TIMINGS["ray_head_startup_s"] = round(time.monotonic() - started, 1)
        yield RayHead(address, proc)
    finally:
        stop(proc, grace=20, sig=signal.SIGINT)  # `ray start --block` shuts its cluster down on Ctrl-C
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_line(f"deploy start-up times: {TIMINGS}")
