"""Work pool, worker, deployments and Ray head for the deploy tests, around the session's one Prefect server
(the `prefect_server` fixture of tests/conftest.py).

Every process is started in its own session and its whole process group is
stopped in teardown, whether the tests passed or not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.deploy.proxy import CountingProxy
from tests.support import REPO
from tests.support.processes import TIMINGS, free_port, start, stop, tail

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="session")
def teacher_proxies(vllm_teacher: Any) -> Iterator[tuple[CountingProxy, CountingProxy]]:
    """Two endpoints for the one real vLLM server; each counts the requests it forwards."""
    with CountingProxy(vllm_teacher.base_url) as a, CountingProxy(vllm_teacher.base_url) as b:
        yield a, b


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
