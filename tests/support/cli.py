"""The `prefmix` CLI in a subprocess, exactly as a user runs it (`python -m prefmix.cli ...`), and readers of
what it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO

PREFMIX = [sys.executable, "-m", "prefmix.cli"]  # for tests that need a Popen (kill, concurrency)


def prefmix(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `prefmix ARGS` to the end. env is the child's whole environment (default: this process's)."""
    return subprocess.run([*PREFMIX, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ) if env is None else env, timeout=timeout)


def last_json(stdout: str) -> Any:
    """The JSON document a --json command printed (Prefect may log lines before it)."""
    match = re.search(r"^[{\[]", stdout, flags=re.MULTILINE)
    assert match, f"no JSON in output: {stdout[-2000:]}"
    return json.loads(stdout[match.start():])


def one_line(stderr: str) -> str:
    """The one stderr line of a command that failed cleanly (no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, f"expected one stderr line, got:\n{stderr[-3000:]}"
    return lines[0]
