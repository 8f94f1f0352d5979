"""API keys from a Prefect Secret block (real Prefect, isolated home, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = """
from prefect.blocks.system import Secret
from prefmix.config import Teacher
from prefmix.errors import ConfigError
from prefmix.generators.client import resolve_api_key

Secret(value="sk-from-block-123").save("prefmix-test-key", overwrite=True)
print(resolve_api_key(Teacher(name="t", model="m", endpoints=["http://x/v1"], api_key_secret="prefmix-test-key")))
try:
    resolve_api_key(Teacher(name="t", model="m", endpoints=["http://x/v1"], api_key_secret="no-such-block"))
except ConfigError as exc:
    print(exc)
"""


def test_api_key_from_prefect_secret_block(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": "",
           "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "sk-from-block-123"
    assert lines[-1] == "teachers.t.api_key_secret: Prefect Secret block 'no-such-block' not found"
