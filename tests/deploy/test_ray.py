"""Scale-out: generation chunks on a Ray cluster (Prefect's RayTaskRunner) against two vLLM endpoints.

The two endpoints are counting forwarders in front of the one real vLLM server,
so the test sees how requests were spread and that a re-run sent none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.deploy.conftest import RayHead
from tests.deploy.proxy import CountingProxy
from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs, write_config
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.server, pytest.mark.vllm]

PROMPTS = 24


def outcome(run_dir: Path) -> tuple[list[int], dict[int, str]]:
    """Which prompt rows became records and which were rejected (and why)."""
    records = pl.read_parquet(run_dir / "chunks" / "*.parquet")
    rejections = pl.read_parquet(run_dir / "rejections" / "*.parquet")
    return sorted(records["origin_row"].to_list()), dict(zip(rejections["origin_row"], rejections["reason"]))


def session_pids(run_dir: Path) -> set[str]:
    """Process ids that ran chunks (session files are named <time>-<pid>-<random>.json)."""
    return {p.stem.split("-")[1] for p in (run_dir / "sessions").glob("*.json")}


def generate(server: PrefectServer, config: Path, *args: str) -> dict[str, Any]:
    done = prefmix("run", "generate", "--config", str(config), "--json", *args, env=server.env)
    assert done.returncode == 0, done.stderr[-4000:]
    return last_json(done.stdout)


def test_ray_generation_over_two_endpoints_matches_a_single_machine_run(
    prefect_server: PrefectServer, ray_head: RayHead, teacher_proxies: tuple[CountingProxy, CountingProxy],
    vllm_teacher: Any, tmp_path: Path,
) -> None:
    a, b = teacher_proxies
    inputs = make_inputs(tmp_path, prompts=PROMPTS, items=10)
    config = write_config(tmp_path, a.base_url, vllm_teacher.model_name, inputs, generation__chunk_size=4,
                          generation__sampling__max_tokens=16, human__calibration_sample=0)
    two_endpoints = f"teachers=[{{name: tiny, model: {vllm_teacher.model_name}, endpoints: [{a.base_url}, {b.base_url}]}}]"

    a.reset(), b.reset()
    single = generate(prefect_server, config, "--run-id", "single", "--task-runner", "thread")
    single_requests = a.chat_requests + b.chat_requests

    a.reset(), b.reset()
    spread = generate(prefect_server, config, "--set", two_endpoints, "--run-id", "on-ray", "--task-runner", "ray",
                      "--ray-address", ray_head.address)
    per_endpoint = (a.chat_requests, b.chat_requests)

    s1, s2 = single["summary"], spread["summary"]
    assert s1["prompts_in"] == s2["prompts_in"] == PROMPTS
    for s in (s1, s2):
        assert s["records"] + sum(s["rejections"].values()) == PROMPTS
    # Same accounting as on one machine: same prompts, same number of requests, every prompt accounted for.
    assert s2["requests_sent"] == s1["requests_sent"] == single_requests == sum(per_endpoint)
    assert min(per_endpoint) > 0, per_endpoint  # both replicas served
    rows1, rejected1 = outcome(Path(single["run_dir"]))
    rows2, rejected2 = outcome(Path(spread["run_dir"]))
    assert sorted(rows1 + list(rejected1)) == sorted(rows2 + list(rejected2)) == list(range(PROMPTS))
    assert spread["chunks"] == PROMPTS // 4 and spread["chunks_cached"] == 0
    # On one machine every chunk ran in the flow's process; on Ray they ran in several worker processes.
    assert len(session_pids(Path(single["run_dir"]))) == 1
    assert len(session_pids(Path(spread["run_dir"]))) >= 2

    # A re-run of the finished generation on Ray skips every chunk: no request reaches either endpoint.
    a.reset(), b.reset()
    again = generate(prefect_server, config, "--set", two_endpoints, "--run-id", "on-ray", "--task-runner", "ray",
                     "--ray-address", ray_head.address)
    assert (a.chat_requests, b.chat_requests) == (0, 0)
    assert again["chunks_cached"] == again["chunks"] == PROMPTS // 4
    assert again["summary"] == {**s2, "elapsed_s": again["summary"]["elapsed_s"]}
