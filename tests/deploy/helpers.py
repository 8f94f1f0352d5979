"""The prefmix CLI in a subprocess, with the deploy commands registered, and small config helpers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Until flows.deploy_commands is listed in prefmix.cli.ROOM_COMMANDS, add it for the test's CLI.
CLI = (
    "import sys, prefmix.cli as c\n"
    "if 'prefmix.flows.deploy_commands' not in c.ROOM_COMMANDS:\n"
    "    c.ROOM_COMMANDS = (*c.ROOM_COMMANDS, 'prefmix.flows.deploy_commands')\n"
    "sys.exit(c.main(sys.argv[1:]))\n"
)


def prefmix(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=timeout)


def last_json(stdout: str) -> Any:
    """The JSON document a --json command printed (Prefect may log lines before it)."""
    match = re.search(r"^[{\[]", stdout, flags=re.MULTILINE)
    assert match, f"no JSON in output: {stdout[-2000:]}"
    return json.loads(stdout[match.start():])


def run_summary(store: Path, run_id: str) -> dict[str, Any]:
    return json.loads((store / "runs" / run_id / "summary.json").read_text())
