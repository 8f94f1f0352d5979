"""Agent runs in the nightly, two nights on landing zones, against a counting proxy in front of the real vLLM server.

Night 1 takes in a landing zone of delivered agent runs (an ATIF file and a chat-JSONL file) and lets the tiny
teacher attempt the demo's tool tasks; both are derived into trajectory and step pairs, every run ends in a row or
a counted rejection, and the blend takes agent rows at the configured kind shares of the general domain. Night 2
finds a copy of the ATIF delivery under a new name (skipped) and the same rollout settings (settled: not run
again): it sends no request at all, and its version holds night 1's agent rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.deploy.proxy import CountingProxy
from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs, write_config

pytestmark = pytest.mark.vllm

DATA = Path(__file__).resolve().parents[1] / "data" / "trajectories"
KIND_SHARES = {"single_turn": 0.8, "trajectory_pair": 0.1, "step_pair": 0.1}
ENVIRONMENT = {"tasks": 2, "attempts": 2, "max_steps": 2, "max_tokens": 64, "seed": 3}


@pytest.fixture(scope="module")
def nights(vllm_teacher, prefect_server, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("agent-nights")
    zone = root / "agent-runs"
    zone.mkdir()
    for name in ("atif_runs.json", "runs.jsonl"):
        shutil.copy(DATA / name, zone / name)
    inputs = make_inputs(root, prompts=40, items=30)
    env = {k: v for k, v in prefect_server.env.items() if k not in ("PREFMIX_STORE", "PREFMIX_CONFIG", "PREFMIX_CRASH_AT")}
    out: dict[str, Any] = {"root": root, "zone": zone}
    with CountingProxy(vllm_teacher.base_url) as proxy:
        config = write_config(
            root, proxy.base_url, vllm_teacher.model_name, inputs, dataset="agents", human__calibration_sample=0,
            generation__sampling__max_tokens=12, generation__chunk_size=16,
            agent={"shards": [{"path": str(zone), "vendor": "acme-agents"}], "environment": ENVIRONMENT,
                   "rules": {"domain": "general", "seed": 3}},
            blend__domain_kind_shares={"general": {"synthetic": KIND_SHARES}})
        out["config"] = config

        def night(day: str) -> dict[str, Any]:
            proxy.reset()
            done = prefmix("run", "nightly", "--config", str(config), "--json", "--date", day, env=env, timeout=1800)
            assert done.returncode == 0, done.stderr[-3000:]
            return {"summary": last_json(done.stdout), "requests": proxy.chat_requests}

        out["n1"] = night("2026-12-01")
        shutil.copy(zone / "atif_runs.json", zone / "atif_runs-resent.json")
        out["n2"] = night("2026-12-02")
    return out


def _rows(summary: dict[str, Any]) -> pl.DataFrame:
    return pl.read_parquet(Path(summary["batch_dir"]) / "data" / "*.parquet")


def test_night_one_derives_every_run_into_a_row_or_a_counted_rejection(nights) -> None:
    s = nights["n1"]["summary"]
    assert (s["status"], s["version"]) == ("published", 1)
    agent = s["agent"]
    landed = [f for f in agent["files"] if f["origin"] == "landing_zone"]
    assert sorted(Path(f["path"]).name for f in landed) == ["atif_runs.json", "runs.jsonl"]
    rolled = agent["rollouts"]
    assert rolled["attempts"] == ENVIRONMENT["tasks"] * ENVIRONMENT["attempts"] and rolled["requests"] > 0
    assert agent["trajectories_in"] == sum(f["trajectories"] for f in agent["files"]) == 8 + rolled["attempts"]
    for d in agent["derivations"]:
        assert d["trajectories_in"] == agent["trajectories_in"] == d["trajectories_in_rows"] + d["trajectories_rejected"]
    rejected = pl.read_parquet(agent["rejections"])
    assert rejected.height == sum(d["trajectories_rejected"] for d in agent["derivations"])
    # the requests the proxy saw: generation plus every agent turn of the rollouts
    assert nights["n1"]["requests"] == s["requests"] + rolled["requests"]


def test_agent_rows_are_blended_at_the_kind_shares(nights) -> None:
    from prefmix.blending.quotas import apportion, exact

    s = nights["n1"]["summary"]
    synthetic = _rows(s).filter((pl.col("domain") == "general") & (pl.col("source") == "synthetic"))
    got = dict(synthetic.group_by("kind").len().iter_rows())
    wanted = apportion(synthetic.height, {k: exact(v) for k, v in KIND_SHARES.items()})
    assert got == {k: n for k, n in wanted.items() if n} and got.get("step_pair", 0) >= 1
    delivered = {f["sha256"] for f in s["agent"]["files"] if f["origin"] == "landing_zone"}
    steps = synthetic.filter(pl.col("kind") == "step_pair")
    assert set(steps["origin_sha256"]) <= delivered | {s["agent"]["rollouts"]["sha256"]}
    # a task's rows all sit in one split
    agent_rows = _rows(s).filter(pl.col("kind") != "single_turn")
    assert agent_rows.group_by("task_group").agg(pl.col("split").n_unique().alias("n"))["n"].max() == 1


def test_night_two_skips_the_copy_and_the_settled_rollouts_and_keeps_the_rows(nights) -> None:
    s1, s2 = nights["n1"]["summary"], nights["n2"]["summary"]
    assert (s2["status"], s2["version"]) == ("published", 2)
    assert nights["n2"]["requests"] == 0  # no new prompt, no new rollout
    agent = s2["agent"]
    assert agent["rollouts"] is None and agent["rollouts_skipped"].startswith("settled")
    manifest = json.loads(Path(s2["manifest"]).read_text())
    copies = [d for d in manifest["dataset"]["deliveries"] if d["status"] == "duplicate"]
    assert [(Path(d["path"]).name, Path(d["duplicate_of"]).name) for d in copies] == [("atif_runs-resent.json", "atif_runs.json")]
    assert s2["skipped_deliveries"] == 1
    kinds = ("trajectory_pair", "step_pair")
    before = set(_rows(s1).filter(pl.col("kind").is_in(kinds))["record_id"])
    after = set(_rows(s2).filter(pl.col("kind").is_in(kinds))["record_id"])
    assert before == after and before
