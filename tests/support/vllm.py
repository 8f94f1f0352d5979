"""Real vLLM servers, each started once per test session: the tiny teacher (`vllm_teacher`, most tests) and the
small real teacher (`small_teacher`, tests marked `small_model`: start-up ~80 s, generation ~70 tokens/s on 2 cores).

Set PREFMIX_TEST_VLLM_URL (e.g. http://127.0.0.1:8011/v1), or PREFMIX_TEST_SMALL_URL for the small teacher, to
reuse a running server while developing; CI always starts its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import REPO
from tests.support.processes import TIMINGS

TINY_DIR = Path(os.environ.get("PREFMIX_TINY_TEACHER", REPO / ".prefmix" / "tiny-teacher"))
TINY_NAME = "tiny-teacher"
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


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


def _version(url: str) -> str:
    import httpx

    return str(httpx.get(url.removesuffix("/v1") + "/version", timeout=10).json().get("version", "unknown"))


@pytest.fixture(scope="session")
def small_teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teacher]:
    """The demo's teacher (configs/demo.yaml), built and served exactly as `prefmix demo` launches it."""
    from prefmix.config import load
    from prefmix.generators.launch import launched_teachers

    config = load(DEMO_CONFIG)
    teacher = config.teachers[0]
    assert teacher.launch is not None and teacher.launch.small and teacher.launch.model_dir
    model_dir = Path(teacher.launch.model_dir)
    url = os.environ.get("PREFMIX_TEST_SMALL_URL")
    if url:
        yield Teacher(url, teacher.model, model_dir, _version(url))
        return
    started = time.monotonic()
    with launched_teachers(config, tmp_path_factory.mktemp("vllm-small")) as endpoints:
        TIMINGS["vllm_small_startup_s"] = round(time.monotonic() - started, 1)
        url = endpoints[teacher.name][0]
        yield Teacher(url, teacher.model, model_dir, _version(url))
