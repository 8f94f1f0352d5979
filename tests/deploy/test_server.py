"""The server path end to end: a real `prefect server`, a process work pool and worker, deployments from
prefect.yaml, the nightly cron read back through the API, ad hoc runs triggered with parameters, the
nightly concurrency limit, and a re-run that skips finished chunks (counted at the vLLM endpoint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest

from tests.deploy.helpers import run_summary
from tests.deploy.proxy import CountingProxy
from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs, write_config
from tests.support.prefect_server import PREFECT, PrefectServer, prefect_client, wait_for_flow_run
from tests.support.processes import start, stop, tail

pytestmark = [pytest.mark.server, pytest.mark.vllm]

POOL = "prefmix-test-pool"
TIMEZONE = "Europe/Berlin"


@dataclass
class Deployed:
    server: PrefectServer
    config: Path
    store: Path
    proxy: CountingProxy
    worker_log: Path


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, teacher_proxies: tuple[CountingProxy, CountingProxy], vllm_teacher: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("deployed")
    proxy = teacher_proxies[0]
    # Twice the prompts the 70/30 mix needs: the random-weight judge rejects a varying share (ties, empty).
    inputs = make_inputs(root, prompts=120, items=60)
    config = write_config(root, proxy.base_url, vllm_teacher.model_name, inputs, generation__chunk_size=16,
                          generation__sampling__max_tokens=16, human__calibration_sample=0)
    server = prefect_server
    pool = server.run(PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = server.run(PREFECT, "--no-prompt", "deploy", "--all",
                        env={"PREFMIX_CONFIG": str(config), "PREFMIX_TIMEZONE": TIMEZONE, "PREFMIX_POOL": POOL})
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    worker_log = server.logs / "worker.log"
    worker = start([PREFECT, "worker", "start", "--pool", POOL, "--limit", "4"], server.env, worker_log)
    try:
        yield Deployed(server, config, root / "store", proxy, worker_log)
    finally:
        stop(worker)


def trigger_cli(d: Deployed, flow: str, *params: str) -> dict[str, Any]:
    done = prefmix("trigger", flow, *(p for kv in params for p in ("--param", kv)), "--json", env=d.server.env)
    assert done.returncode == 0, done.stderr[-3000:]
    return last_json(done.stdout)


def completed(d: Deployed, flow_run_id: str) -> Any:
    run = wait_for_flow_run(d.server, flow_run_id)
    assert run.state.is_completed(), f"{run.name}: {run.state_name} {run.state.message}\n{tail(d.worker_log)}"
    return run


def test_deployments_come_from_prefect_yaml_with_the_nightly_cron(deployed: Deployed) -> None:
    with prefect_client(deployed.server) as client:
        nightly = client.read_deployment_by_name("nightly/nightly")
        names = {d.name for d in client.read_deployments()}
    assert {"nightly", "generate", "blend"} <= names
    [schedule] = [s.schedule for s in nightly.schedules]
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", TIMEZONE)
    assert nightly.parameters == {"config_path": str(deployed.config)}
    assert nightly.work_pool_name == POOL
    limit = nightly.global_concurrency_limit
    assert limit is not None and limit.limit == 1
    assert nightly.concurrency_options.collision_strategy.value == "ENQUEUE"


def test_adhoc_generate_with_a_parameter_override_completes_and_lands_in_the_store(deployed: Deployed) -> None:
    before = deployed.proxy.chat_requests
    flow_run = trigger_cli(deployed, "generate", "limit=5", "run_id=adhoc-five")
    run = completed(deployed, flow_run["id"])
    assert run.name == "generate-tiny-5"
    summary = run_summary(deployed.store, "adhoc-five")
    assert summary["summary"]["prompts_in"] == 5  # the override, not the config's 120 prompts
    meta = json.loads((deployed.store / "runs" / "adhoc-five" / "run.json").read_text())
    assert meta["fingerprint_inputs"]["limit"] == 5
    rows = pl.read_parquet(summary["record_files"]).height
    s = summary["summary"]
    assert rows == s["records"] and s["records"] + sum(s["rejections"].values()) == 5
    assert deployed.proxy.chat_requests - before == s["requests_sent"] > 0
    assert "| prompts in | 5 |" in run_artifact(deployed, flow_run["id"])  # the run summary people read in the UI


def run_artifact(d: Deployed, flow_run_id: str) -> str:
    from uuid import UUID

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_client(d.server) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    [artifact] = [a for a in found if a.type == "markdown"]
    return str(artifact.data)


def test_rerun_of_a_finished_generation_skips_its_chunks(deployed: Deployed) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    first = trigger_cli(deployed, "generate", "limit=20", "run_id=adhoc-rerun")
    completed(deployed, first["id"])
    sent = deployed.proxy.chat_requests
    assert run_summary(deployed.store, "adhoc-rerun")["summary"]["requests_sent"] > 0

    again = trigger_cli(deployed, "generate", "limit=20", "run_id=adhoc-rerun")
    completed(deployed, again["id"])
    assert deployed.proxy.chat_requests == sent  # not one request reached the teacher
    with prefect_client(deployed.server) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[again["id"]])))
    chunks = [t for t in tasks if t.name.startswith("chunk-")]
    assert len(chunks) == 2 and all(t.state_name == "Cached" for t in chunks)


def test_adhoc_blend_with_ratios_stages_a_batch(deployed: Deployed) -> None:
    flow_run = trigger_cli(deployed, "blend", "ratios={human: 0.9, synthetic: 0.1}", "batch_id=adhoc-blend",
                           "runs=[adhoc-five, adhoc-rerun]")
    run = completed(deployed, flow_run["id"])
    assert run.name == "blend-adhoc-blend"
    staged = deployed.store / "staging" / "adhoc-blend"
    frame = pl.read_parquet(staged / "data" / "*.parquet")
    counts = dict(frame.group_by("source").len().iter_rows())
    assert set(counts) == {"human", "synthetic"}
    assert abs(counts["synthetic"] - 0.1 * frame.height) <= len(frame["domain"].unique())  # rounding per domain
    assert not (deployed.store / "batches" / "adhoc-blend").exists()  # staged, not published


def test_two_nightly_runs_at_once_run_one_after_the_other(deployed: Deployed) -> None:
    from prefmix.flows.commands import start_deployment as trigger
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: deployed.server.url}):
        runs = [trigger("nightly", {"run_date": day}) for day in ("2026-11-01", "2026-11-02")]
    finals = [wait_for_flow_run(deployed.server, str(r.id)) for r in runs]
    assert sorted(r.name for r in finals) == ["nightly-2026-11-01", "nightly-2026-11-02"]
    first, second = sorted(finals, key=lambda r: r.start_time)
    assert second.start_time >= first.end_time  # never overlapped
    with prefect_client(deployed.server) as client:
        held = [s.name for s in client.read_flow_run_states(second.id)]
    assert "AwaitingConcurrencySlot" in held, held
    for run in finals:
        completed(deployed, str(run.id))

    # The store is consistent: both batches published and indexed, LATEST on the second, nothing staged.
    store = deployed.store
    listing = prefmix("batches", "--json", "--store", str(store), env=deployed.server.env)
    assert listing.returncode == 0, listing.stderr
    batches = {b["batch_id"]: b for b in last_json(listing.stdout)}
    published = sorted(p.name for p in (store / "batches").iterdir())
    assert len(published) == 2 and set(published) <= set(batches)
    assert all((store / "batches" / b / "manifest.json").exists() for b in published)
    latest = (store / "LATEST").read_text().strip()
    second_day = second.name.removeprefix("nightly-").replace("-", "")
    assert latest in published and latest.startswith(f"b{second_day}-")
    assert not any((store / "staging").glob("*")) if (store / "staging").exists() else True
