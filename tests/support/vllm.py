"""A real vLLM server with the tiny teacher, started once per test session. The small real teacher is served by
the demo itself (tests/flows/test_demo.py runs `prefmix demo`, which launches it as `make demo` does).

Set PREFMIX_TEST_VLLM_URL (e.g. http://127.0.0.1:8011/v1) to reuse a running server while developing; CI always
starts its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import REPO

TINY_DIR = Path(os.environ.get("PREFMIX_TINY_TEACHER", REPO / ".prefmix" / "tiny-teacher"))
TINY_NAME = "tiny-teacher"


@dataclass(frozen=True)
class Teacher:
    base_url: str
    model_name: str
    model_dir: Path
    vllm_version: str


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from prefmix.generators.vllm_server import build_tiny_teacher

    return build_tiny_teacher(TINY_DIR, seed=0)


@pytest.fixture(scope="session")
def vllm_teacher(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teacher]:
    url = os.environ.get("PREFMIX_TEST_VLLM_URL")
    if url:
        import httpx

        version = httpx.get(url.removesuffix("/v1") + "/version", timeout=10).json().get("version", "unknown")
        yield Teacher(url, TINY_NAME, tiny_model_dir, version)
        return
    from prefmix.generators.vllm_server import VLLMServer

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(tiny_model_dir, name=TINY_NAME, port=0, log_path=log) as server:
        yield Teacher(server.base_url, server.model_name, tiny_model_dir, server.vllm_version)

