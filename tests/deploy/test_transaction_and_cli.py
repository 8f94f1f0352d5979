"""Stage -> gate -> publish rollback (flows.transaction) and the trigger command's one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prefect import flow, task

from prefmix.flows.transaction import staged_batch
from prefmix.config import Config
from prefmix.errors import RunAborted, UserError
from prefmix.store import Store
from tests.support.cli import prefmix
from tests.support.prefect_server import PrefectServer, in_process


class GateCrashed(RuntimeError):
    pass


@task
def stage(store: Store, batch_id: str, fail_half_way: bool) -> str:
    staged = store.staging(batch_id) / "data"
    staged.mkdir(parents=True)
    (staged / "part-0.parquet").write_bytes(b"rows")
    if fail_half_way:
        raise OSError("disk full while staging")
    return str(staged.parent)


@task
def gate(staged: str, crash: bool) -> str:
    if crash:
        raise GateCrashed("expectation suite could not run")
    return "pass"


@task
def publish(store: Store, batch_id: str) -> None:
    store.move(store.staging(batch_id), store.batch_dir(batch_id))


@flow
def stage_gate_publish(root: str, batch_id: str, crash_gate: bool = False, fail_stage: bool = False) -> str:
    store = Store(Path(root))
    with staged_batch(store, batch_id):
        staged = stage(store, batch_id, fail_stage)
        gate(staged, crash_gate)
        publish(store, batch_id)
    return "published"


@pytest.mark.server
@pytest.mark.parametrize("crash_gate, fail_stage", [(True, False), (False, True)])
def test_a_crash_inside_the_transaction_removes_the_staged_batch(prefect_server: PrefectServer, tmp_path: Path,
                                                                  crash_gate: bool, fail_stage: bool) -> None:

    with in_process(prefect_server):
        state = stage_gate_publish(str(tmp_path), "b1", crash_gate=crash_gate, fail_stage=fail_stage,
                                   return_state=True)
    assert state.is_failed()
    assert not (tmp_path / "staging" / "b1").exists()
    assert not (tmp_path / "batches" / "b1").exists()


@pytest.mark.server
def test_a_clean_transaction_publishes_and_keeps_the_batch(prefect_server: PrefectServer, tmp_path: Path) -> None:

    with in_process(prefect_server):
        assert stage_gate_publish(str(tmp_path), "b2") == "published"
    assert (tmp_path / "batches" / "b2" / "data" / "part-0.parquet").read_bytes() == b"rows"
    assert not (tmp_path / "staging" / "b2").exists()


def _no_server_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_PROFILES_PATH": str(tmp_path / "profiles.toml"),
            "PREFECT_API_URL": ""}


def test_trigger_without_a_server_is_one_line_exit_2(tmp_path: Path) -> None:
    done = prefmix("trigger", "generate", "--param", "limit=5", env=_no_server_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "prefmix: error: PREFECT_API_URL is not set; start a server (`make server`) and "
        "export PREFECT_API_URL=http://127.0.0.1:4200/api"
    ]


def test_trigger_with_an_unreachable_server_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**_no_server_env(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    done = prefmix("trigger", "nightly", env=env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("prefmix: error: cannot reach the Prefect API at http://127.0.0.1:9/api")


def test_trigger_param_must_be_key_value(tmp_path: Path) -> None:
    done = prefmix("trigger", "generate", "--param", "limit", env=_no_server_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == "prefmix: error: --param: expected key=value, got 'limit'"


@pytest.mark.server
def test_trigger_of_a_missing_deployment_or_parameter_is_one_line(prefect_server: PrefectServer) -> None:
    missing = prefmix("trigger", "blend", "--deployment", "blend/nope", env=prefect_server.env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"prefmix: error: deployment 'blend/nope' not found on {prefect_server.url}; create it with `make deploy`"
    )


def test_run_generate_with_a_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("teachers: [{name: t, model: m, endpoints: [http://127.0.0.1:9/v1]}]\ngeneration: {limt: 3}\n")
    done = prefmix("run", "generate", "--config", str(bad), env=_no_server_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == f"prefmix: error: {bad}: generation.limt: unknown key"
    unknown = prefmix("run", "generate", "--config", str(bad).replace("bad", "none"), env=_no_server_env(tmp_path))
    assert unknown.returncode == 2 and "config file not found" in unknown.stderr


class Chunk:
    key = "k0"


@pytest.mark.server
@pytest.mark.parametrize("error, attempts, final", [(OSError("teacher unreachable"), 2, "Completed"),
                                                     (UserError("prompts.parquet: row 3: prompt is empty"), 1, "Failed"),
                                                     (RunAborted("error rate passed the budget"), 1, "Failed")])
def test_chunks_retry_transient_failures_only(prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              error: Exception, attempts: int, final: str) -> None:
    import prefmix.generators.run

    from prefmix.flows.generate import run_chunk_task

    calls: list[int] = []

    def flaky(*args: object, **kwargs: object) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return "chunk written"

    monkeypatch.setattr(prefmix.generators.run, "run_chunk", flaky)

    @flow
    def one_chunk() -> str:
        task_ = run_chunk_task.with_options(result_storage=tmp_path, retry_delay_seconds=0)
        return task_(Config(), Store(tmp_path), f"retry-{type(error).__name__}", Chunk(), None)

    with in_process(prefect_server):
        state = one_chunk(return_state=True)
    assert (len(calls), state.type.value.title()) == (attempts, final)
