"""Fixtures every test folder shares, defined once in tests/support and registered here:

- `tiny_model_dir`, `vllm_teacher`: a real vLLM server with the tiny teacher, started once per session
  (tests/support/vllm.py; PREFMIX_TEST_VLLM_URL reuses a running one).
- `prefect_server`: the one real `prefect server` of the session (tests/support/prefect_server.py;
  PREFMIX_TEST_PREFECT_API reuses a running one). No other fixture starts a Prefect server on SQLite.
- `postgres`: a throwaway PostgreSQL cluster run as the postgres user (tests/support/postgres.py;
  PREFMIX_TEST_POSTGRES reuses a running one): the ledger tests and the Prefect-on-PostgreSQL deploy test.
"""

from __future__ import annotations

from typing import Any

from tests.support.postgres import Postgres, postgres
from tests.support.prefect_server import prefect_server
from tests.support.processes import TIMINGS
from tests.support.vllm import Teacher, tiny_model_dir, vllm_teacher

__all__ = ["Postgres", "Teacher", "postgres", "prefect_server", "tiny_model_dir", "vllm_teacher"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_line(f"server start-up times: {TIMINGS}")
