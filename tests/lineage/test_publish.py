"""Publication protocol: atomic publish, quarantine, override, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from prefmix.lineage import audit
from prefmix.lineage.ledger import Ledger
from prefmix.lineage.manifest import read_manifest
from prefmix.lineage.publish import CRASH_POINTS, override, publish, recover

from prefmix.cli import main
from prefmix.contract import RecoverReport
from prefmix.errors import UserError
from tests.lineage.lineage_helpers import build_batch, publish_batch
from tests.support import REPO

WORKER = [sys.executable, "-m", "tests.lineage.crash_worker"]  # run from the repo root: `tests` is a package


def run_worker(action: str, store, batch_id: str, records, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFMIX_CRASH_AT": crash_at or ""}
    argv = [*WORKER, action, str(store.root), batch_id, str(records["human1"]), str(records["syn1"])]
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def assert_consistent(store, allowed: set[str]) -> str:
    """LATEST names a complete, verified batch in batches/ and is one of the allowed ids."""
    latest = store.latest()
    assert latest in allowed
    assert audit.verify(store, latest)["ok"]
    assert (store.batch_dir(latest) / "README.md").exists()
    assert read_manifest(store.batch_dir(latest)).status in ("published", "overridden")
    return latest


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p.startswith("publish:")])
def test_sigkill_during_publish_leaves_old_or_new_state(store, config, records, point):
    publish_batch(store, config, "old", [records["human1"]], [records["syn1"]])
    result = run_worker("publish", store, "new", records, point)
    assert result.returncode == -signal.SIGKILL, result.stderr
    before = assert_consistent(store, {"old", "new"})
    assert before == ("old" if point in ("publish:before-rename", "publish:after-rename") else "new")
    report = recover(store)
    after = assert_consistent(store, {"old", "new"})
    assert not (store.root / "staging").exists() or not any((store.root / "staging").iterdir())
    if point == "publish:before-rename":
        assert after == "old" and report.removed_staging == ["new"] and not store.batch_dir("new").exists()
    else:
        assert after == "new"
        assert Ledger.for_store(store).batch_status("new") == "published"  # the ledger caught up
    assert recover(store) == RecoverReport(removed_staging=[], finished_overrides=[], latest=None, indexed=[], removed_tmp=[])


def test_sigkill_during_quarantine_keeps_latest(store, config, records):
    publish_batch(store, config, "old", [records["human1"]], [records["syn1"]])
    result = run_worker("quarantine", store, "bad", records, "quarantine:before-rename")
    assert result.returncode == -signal.SIGKILL
    assert assert_consistent(store, {"old"}) == "old"
    recover(store)
    assert store.latest() == "old" and not store.quarantine("bad").exists()


@pytest.mark.parametrize("point", ["override:before-rename", "override:after-rename"])
def test_sigkill_during_override_is_finished_by_recover(store, config, records, point):
    publish_batch(store, config, "old", [records["human1"]], [records["syn1"]])
    publish_batch(store, config, "bad", [records["human1"]], [records["syn1"]], passed=False)
    result = run_worker("override", store, "bad", records, point)
    assert result.returncode == -signal.SIGKILL
    assert assert_consistent(store, {"old"}) == "old"
    report = recover(store)
    assert assert_consistent(store, {"bad"}) == "bad"
    assert report.latest == {"from": "old", "to": "bad"}
    assert report.finished_overrides == (["bad"] if point == "override:before-rename" else [])


def test_crash_hook_is_inert_without_the_variable(store, config, records):
    result = run_worker("publish", store, "new", records, None)
    assert result.returncode == 0, result.stderr
    assert store.latest() == "new"


def test_quarantined_batch_never_becomes_latest(store, config, records):
    publish_batch(store, config, "good", [records["human1"]], [records["syn1"]])
    publish_batch(store, config, "bad", [records["human2"]], [records["syn2"]], passed=False)
    assert store.latest() == "good"
    assert store.quarantine("bad").is_dir() and not store.batch_dir("bad").exists()
    manifest = read_manifest(store.quarantine("bad"))
    assert manifest.status_history[-1].status == "quarantined" and "unique_record_id" in manifest.status_history[-1].reason
    assert "pii_share" not in manifest.status_history[-1].reason  # warnings do not block
    assert recover(store).latest is None and store.latest() == "good"


def test_override_records_the_reason(store, config, records, capsys):
    publish_batch(store, config, "good", [records["human1"]], [records["syn1"]])
    publish_batch(store, config, "bad", [records["human2"]], [records["syn2"]], passed=False)
    code = main(["publish", "bad", "--override", "--store", str(store.root)])
    assert code == 2 and "--reason" in capsys.readouterr().err
    code = main(["publish", "bad", "--override", "--reason", "duplicates are known vendor re-sends", "--by", "alice", "--store", str(store.root)])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(store.batch_dir("bad"))
    last = manifest.status_history[-1]
    assert (last.status, last.by, last.reason) == ("overridden", "alice", "duplicates are known vendor re-sends")
    assert [s.status for s in manifest.status_history] == ["staged", "quarantined", "overridden"]
    assert store.latest() == "bad" and not store.quarantine("bad").exists()
    assert Ledger.for_store(store).batch_status("bad") == "overridden"
    with pytest.raises(UserError, match="already published"):
        override(store, "bad", "again", "alice")


def test_override_of_an_older_batch_does_not_move_latest_back(store, config, records):
    publish_batch(store, config, "bad", [records["human2"]], [records["syn2"]], passed=False)
    publish_batch(store, config, "newer", [records["human1"]], [records["syn1"]])
    override(store, "bad", "accepted", "bob")
    assert store.latest() == "newer" and store.batch_dir("bad").is_dir()


def test_publish_refuses_changed_files_and_reused_ids(store, config, records):
    manifest = build_batch(store, config, "b", [records["human1"]], [records["syn1"]])
    data = sorted((store.staging("b") / "data").glob("*.parquet"))[0]
    data.write_bytes(data.read_bytes() + b"\0")
    with pytest.raises(UserError, match="data files changed after the manifest was built"):
        publish(store, manifest)
    assert store.latest() is None and not store.batch_dir("b").exists()
    publish_batch(store, config, "c", [records["human1"]], [records["syn1"]])
    with pytest.raises(UserError, match="batch c already exists"):
        build_batch(store, config, "c", [records["human1"]], [records["syn1"]])


def test_locked_ledger_is_a_clear_error(store, config, records, monkeypatch):
    publish_batch(store, config, "a", [records["human1"]], [records["syn1"]])
    monkeypatch.setattr("prefmix.lineage.ledger.BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(store.ledger_path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="ledger is locked by another process"):
            Ledger.for_store(store).index_batch(read_manifest(store.batch_dir("a")), store.batch_dir("a"))
        # Publishing still succeeds (the ledger is an index); recover() catches up once the lock is gone.
        publish_batch(store, config, "b", [records["human1"]], [records["syn1"]])
        assert store.latest() == "b"
    finally:
        holder.rollback()
        holder.close()
    assert recover(store).indexed == ["b"]
    assert json.dumps(audit.impact(store, str(records["human1"]))["batches"][1]["batch_id"]) == '"b"'
