"""The chat client against a real vLLM server, through a fault-injecting proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from prefmix.config import ErrorBudget, Retry, Teacher
from prefmix.errors import RunAborted
from prefmix.store import Store

from prefmix.generators.client import ChatClient, ErrorWindow, RequestFailed
from prefmix.generators.run import generate
from tests.generators.fault_proxy import FaultProxy
from tests.generators.helpers import config

pytestmark = pytest.mark.vllm
FAST = Retry(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _run(teacher_url: list[str], model: str, retry: Retry = FAST, n: int = 1, budget: ErrorBudget | None = None,
         sequential: bool = False, timeout_s: float = 20):
    teacher = Teacher(name="t", model=model, endpoints=teacher_url, max_in_flight=16, timeout_s=timeout_s)
    errors = ErrorWindow(budget or ErrorBudget(window=1000, max_error_rate=1.0))

    async def go():
        async with ChatClient(teacher, teacher_url, retry, errors) as client:
            if sequential:  # deterministic order of attempts, so the proxy's fault pattern is predictable
                return client, [await client.chat(HI) for _ in range(n)]
            results = await asyncio.gather(*(client.chat(HI) for _ in range(n)), return_exceptions=True)
            return client, results

    return asyncio.run(go())


def test_client_answers_and_counts_tokens(vllm_teacher) -> None:
    client, [result] = _run([vllm_teacher.base_url], vllm_teacher.model_name)
    assert result.completion_tokens >= 1 and result.prompt_tokens >= 1
    assert client.stats.completion_tokens == result.completion_tokens


def test_other_4xx_is_not_retried(vllm_teacher) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=["400"], every=1) as proxy:
        _, [result] = _run([proxy.base_url], vllm_teacher.model_name)
    assert isinstance(result, RequestFailed) and result.reason == "request_failed" and "HTTP 400" in result.detail
    assert proxy.posts == 1


def test_unknown_model_404_is_not_retried(vllm_teacher) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=[]) as proxy:
        _, [result] = _run([proxy.base_url], "no-such-model")
    assert isinstance(result, RequestFailed) and "HTTP 404" in result.detail
    assert proxy.posts == 1


@pytest.mark.parametrize("kind", ["503", "429", "truncated", "cut_json"])
def test_retryable_faults_are_retried_up_to_max_attempts(vllm_teacher, kind: str) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=[kind], every=1) as proxy:
        _, [result] = _run([proxy.base_url], vllm_teacher.model_name)
    assert isinstance(result, RequestFailed) and result.reason == "request_failed" and "after 3 attempts" in result.detail
    assert proxy.posts == 3


def test_retry_then_success(vllm_teacher) -> None:
    # every 2nd POST fails; one request at a time, each failed attempt is followed by a good one
    with FaultProxy(vllm_teacher.base_url, kinds=["500", "429", "truncated", "cut_json", "timeout"], every=2,
                    timeout_sleep=9) as proxy:  # a real request must not time out on a loaded machine: 6 s
        client, results = _run([proxy.base_url], vllm_teacher.model_name, n=10, sequential=True, timeout_s=6)
    assert len(results) == 10 and all(r.completion_tokens >= 1 for r in results)
    assert client.stats.retries == sum(proxy.injected.values()) == 9
    assert set(proxy.injected) == {"500", "429", "truncated", "cut_json", "timeout"}


def test_requests_spread_over_endpoints(vllm_teacher) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=[]) as a, FaultProxy(vllm_teacher.base_url, kinds=[]) as b:
        client, results = _run([a.base_url, b.base_url], vllm_teacher.model_name, n=40)
    assert all(not isinstance(r, BaseException) for r in results)
    assert a.posts + b.posts == 40 and min(a.posts, b.posts) >= 10


def test_error_budget_stops_the_client(vllm_teacher) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=["500"], every=1) as proxy:
        _, results = _run([proxy.base_url], vllm_teacher.model_name, n=30, budget=ErrorBudget(window=10, max_error_rate=0.5))
    assert any(isinstance(r, RunAborted) for r in results)
    assert proxy.posts < 30 * 3  # stopped instead of spending every retry


def test_run_stops_early_with_clear_message_and_nothing_partial(vllm_teacher, tmp_path: Path) -> None:
    with FaultProxy(vllm_teacher.base_url, kinds=["500"], every=1) as proxy:
        cfg = config(tmp_path, proxy.base_url, 40, error_budget={"window": 20, "max_error_rate": 0.5})
        with pytest.raises(RunAborted, match=r"error rate .* passed generation.error_budget.max_error_rate=0.5.*HTTP 500.*--run-id r1"):
            generate(cfg, Store.at(cfg.store), "r1")
    assert not list((tmp_path / "store" / "runs" / "r1").glob("chunks/*.parquet"))
    assert proxy.posts < 40 * 2 * 5


def test_api_key_is_sent_but_never_stored(vllm_teacher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-7f3a9c-SECRET"
    monkeypatch.setenv("PREFMIX_TEST_KEY", secret)
    with FaultProxy(vllm_teacher.base_url, kinds=[]) as proxy:
        cfg = config(tmp_path, proxy.base_url, 6)
        cfg.teachers[0].api_key_env = "PREFMIX_TEST_KEY"
        run = generate(cfg, Store.at(cfg.store), "r1")
    assert proxy.auth_headers == {f"Bearer {secret}"}
    for path in Path(run.run_dir).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
