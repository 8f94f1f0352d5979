"""API keys from a Prefect Secret block (real Prefect: the session's server, an isolated home, in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectServer, client_env

pytestmark = [pytest.mark.slow, pytest.mark.server]
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


def test_api_key_from_prefect_secret_block(prefect_server: PrefectServer, tmp_path: Path) -> None:
    env = client_env(tmp_path / "prefect", prefect_server.url)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "sk-from-block-123"
    assert lines[-1] == "teachers.t.api_key_secret: Prefect Secret block 'no-such-block' not found"
