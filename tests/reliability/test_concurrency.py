"""Two `prefmix run nightly` processes started at once on one store: one runs, the other stops at the store lock
with one clear line (exit 2), and the store ends consistent."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.reliability.helpers import check_accounting, check_published, debris, env_for, make_setup
from tests.support import REPO
from tests.support.cli import PREFMIX, one_line
from tests.reliability.proxies import ReliabilityProxy

pytestmark = pytest.mark.vllm


def test_second_nightly_on_the_same_store_exits_2_at_the_lock(vllm_teacher, prefect_server, tmp_path):
    # The teacher is held until one process has exited, so the winner is still inside its run (holding the lock)
    # whichever process gets there first: no timing decides the outcome.
    with ReliabilityProxy(vllm_teacher.base_url, hold=True) as proxy:
        config = make_setup(tmp_path, proxy.base_url, vllm_teacher.model_name)
        env = env_for(prefect_server.url)
        args = [*PREFMIX, "run", "nightly", "--config", str(config), "--json", "--date", "2026-11-20"]
        procs = [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        deadline = time.monotonic() + 600
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        assert winner.poll() is None, "both processes finished while the teacher was held"
        proxy.release()
        out, err = winner.communicate(timeout=600)
        lost_out, lost_err = loser.communicate()
    assert proxy.held > 0
    assert loser.returncode == 2, lost_err[-2000:]
    line = one_line(lost_err)
    assert "store is locked by pid" in line and str(tmp_path / "store") in line and "nightly 2026-11-20" in line
    assert str(winner.pid) in line
    assert winner.returncode == 0, err[-3000:]
    summary = json.loads(out)
    store = tmp_path / "store"
    assert check_published(store, {summary["batch_id"]}, env) == summary["batch_id"]
    check_accounting(store, "nightly-2026-11-20")
    assert debris(store) == []
    assert sorted(p.name for p in (store / "batches").iterdir()) == [summary["batch_id"]]
