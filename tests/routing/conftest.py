"""Fixtures for the labeling-tool side of routing: a real Label Studio server for the test session.

`label_studio` starts one server (tests/routing/labelstudio_server.py) on a free loopback port with SQLite
in a temp folder, and stops its process group in teardown. Set PREFMIX_TEST_LABEL_STUDIO_URL and
PREFMIX_TEST_LABEL_STUDIO_TOKEN to use a running server while developing; CI always starts its own.

Without `.venv-labelstudio` (scripts/setup_labelstudio.sh) the `labelstudio` tests skip, except under CI,
where they fail: a green CI must not hide a missing install step.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.routing.labelstudio_server import (
    Annotator,
    LabelStudioServer,
    label_studio_bin,
)

_TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMINGS:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _TIMINGS.items())
        terminalreporter.write_line(f"label studio: {parts}")


def missing(what: str) -> None:
    """Skip (developer machine) or fail (CI) when a labeling-tool dependency is not installed."""
    message = f"{what}; run scripts/setup_labelstudio.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def need(module: str) -> Any:
    """Import a module the labeling side needs, or skip/fail as `missing` does."""
    try:
        return __import__(module)
    except ImportError:
        missing(f"{module} is not installed in this environment")


class Server:
    """What a test needs from the session's server: its URL, the admin token, and new annotator accounts."""

    def __init__(self, url: str, token: str, owner: LabelStudioServer | None) -> None:
        self.url = url
        self.token = token
        self.owner = owner
        self._names = itertools.count()

    def title(self, title: str) -> str:
        """A project title; made unique on a developer's running server, where earlier runs left projects."""
        return title if self.owner is not None else f"{title} ({os.getpid()}-{next(self._names)})"

    def create_annotator(self, name: str) -> Annotator:
        if self.owner is None:  # a developer's running server: sign up against it
            owner = LabelStudioServer(data_dir=Path("/nonexistent"), port=int(self.url.rsplit(":", 1)[1]), token=self.token)
            return owner.create_annotator(f"{name}-{os.getpid()}-{next(self._names)}@prefmix.test")
        return self.owner.create_annotator(f"{name}-{next(self._names)}@prefmix.test")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = os.environ.get("PREFMIX_TEST_LABEL_STUDIO_URL")
    if url:
        yield Server(url.rstrip("/"), os.environ["PREFMIX_TEST_LABEL_STUDIO_TOKEN"], None)
        return
    if not label_studio_bin().exists():
        missing(f"no Label Studio server at {label_studio_bin()}")
    need("label_studio_sdk")
    server = LabelStudioServer(data_dir=tmp_path_factory.mktemp("label-studio"))
    with server:
        if server.template_s is not None:
            _TIMINGS["template database"] = server.template_s
        _TIMINGS["start-up to healthy"] = server.startup_s or 0.0
        yield Server(server.url, server.token, server)
