"""Free ports and child processes that tests start in their own session and stop with their whole group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from prefmix.generators.vllm_server import free_port
from tests.support import REPO

__all__ = ["TIMINGS", "free_port", "start", "stop", "tail"]

TIMINGS: dict[str, float] = {}  # start-up times of the session's servers, printed in the terminal summary


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    """Start cmd in a new session (so `stop` can signal its whole process group), output into log."""
    with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


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
