"""A throwaway PostgreSQL cluster for the test session (the ledger on PostgreSQL, the Prefect server on PostgreSQL).

PostgreSQL refuses to run as root, so the cluster is initialised and run as the `postgres` user
(`runuser -u postgres -- initdb -D DIR -A trust`, then `pg_ctl ... start`) in a folder under /tmp owned by that
user, on a free loopback port, with its Unix socket in the same folder. The fixture `postgres` (session scope,
registered for every folder by tests/conftest.py) yields a `Postgres` that makes databases on demand; teardown
stops the cluster (`pg_ctl stop -m immediate`) and removes the folder, whether the tests passed or not.

Set PREFMIX_TEST_POSTGRES=postgresql://user@host:port to use a running server instead (databases are created
with unique names and dropped at the end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.processes import TIMINGS, free_port

USER = "postgres"


@dataclass
class Postgres:
    host: str
    port: int
    user: str = USER
    made: list[str] = field(default_factory=list)

    def url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL: driver psycopg (the ledger) or asyncpg (Prefect's server)."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "prefmix") -> str:
        """A new, empty database; its name."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"postgresql://{self.user}@{self.host}:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return name

    def drop_databases(self) -> None:
        import psycopg

        with contextlib.suppress(Exception):
            with psycopg.connect(f"postgresql://{self.user}@{self.host}:{self.port}/postgres", autocommit=True) as conn:
                for name in self.made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def running_postgres(timeout: float = 120) -> Iterator[Postgres]:
    """initdb + pg_ctl start as the postgres user on a free loopback port; stopped and removed on exit."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    base = Path(tempfile.mkdtemp(prefix="prefmix-pg-", dir="/tmp"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, USER, USER)
    started = time.monotonic()
    init = _as_postgres("initdb", "-D", str(data), "-A", "trust", "-U", USER, "--no-sync")
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = _as_postgres("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "-t", str(int(timeout)),
                         "start", timeout=timeout + 30)
    try:
        if start.returncode != 0:
            log = (base / "server.log").read_text(errors="replace")[-2000:] if (base / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {start.stderr[-1000:]} {log}")
        TIMINGS["postgres_startup_s"] = round(time.monotonic() - started, 1)
        server = Postgres("127.0.0.1", port)
        yield server
        server.drop_databases()
    finally:
        _as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL server (one throwaway cluster for every test folder)."""
    reuse = os.environ.get("PREFMIX_TEST_POSTGRES")
    if reuse:
        from urllib.parse import urlparse

        parsed = urlparse(reuse)
        server = Postgres(parsed.hostname or "127.0.0.1", parsed.port or 5432, parsed.username or USER)
        yield server
        server.drop_databases()
        return
    with running_postgres() as server:
        yield server
