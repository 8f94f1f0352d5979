"""Async OpenAI-compatible chat client for one teacher (one or more vLLM endpoints).

- least-outstanding endpoint choice, a bounded number of requests in flight;
- retries with exponential backoff + jitter on 429 (Retry-After honoured), 5xx,
  timeouts, dropped connections and truncated / non-JSON bodies; none on other 4xx;
- a shared sliding-window error budget that stops the run (RunAborted) instead of spinning.
The API key is read once, held only in the request header, never logged.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from prefmix.config import ErrorBudget, Retry, Teacher
from prefmix.credentials import read_key
from prefmix.errors import ConfigError, RunAborted

RETRY_AFTER_CAP_S = 60.0
OVER_LENGTH_HINTS = ("context length", "maximum context", "too long", "max_model_len", "prompt is too long")


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[dict[str, Any]] | None = None  # choices[0].logprobs.content, when the request asked for them


class RequestFailed(Exception):
    """A request that did not succeed after its retries; `reason` is a rejection reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Retryable(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ErrorWindow:
    """Outcome of the last `window` attempts; trips when errors exceed max_error_rate of a full window."""

    def __init__(self, budget: ErrorBudget) -> None:
        self.window = budget.window
        self.max_rate = budget.max_error_rate
        self.outcomes: deque[bool] = deque(maxlen=budget.window)
        self.errors = 0
        self.tripped: str | None = None
        self.last_error = ""

    def record(self, ok: bool, detail: str = "") -> None:
        if len(self.outcomes) == self.window and not self.outcomes[0]:
            self.errors -= 1
        self.outcomes.append(ok)
        if not ok:
            self.errors += 1
            self.last_error = detail
            # Errors beyond what a full window may hold trip at once, so a dead server is noticed early.
            if self.tripped is None and self.errors > self.max_rate * self.window:
                self.tripped = (
                    f"error rate {self.errors}/{len(self.outcomes)} requests over the last window passed "
                    f"generation.error_budget.max_error_rate={self.max_rate:g} (window {self.window}); "
                    f"last error: {detail}"
                )

    def check(self) -> None:
        if self.tripped:
            raise RunAborted(self.tripped)


def resolve_api_key(teacher: Teacher) -> str | None:
    """From the environment variable or Prefect Secret block the teacher names (never from the config itself)."""
    return read_key(teacher.api_key_env, teacher.api_key_secret, f"teachers.{teacher.name}")


@dataclass
class _Endpoint:
    url: str
    outstanding: int = 0
    sent: int = 0


@dataclass
class Tokens:
    """Tokens spent, as the server reported them in each counted completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def count(self, result: ChatResult) -> None:
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens


@dataclass
class ClientStats(Tokens):
    """One client's requests: attempts sent, retries, requests that failed for good, and tokens of the successes."""

    attempts: int = 0
    retries: int = 0
    failures: int = 0


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(raw), 0.0), RETRY_AFTER_CAP_S) if raw is not None else None
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def loads(body: bytes | str) -> Any:
    """JSON with orjson (several times faster on logprob-heavy bodies); the stdlib for what orjson refuses
    (NaN, Infinity)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def dumps(value: Any) -> str:
    """Compact JSON text with orjson (NaN and infinities become null)."""
    return orjson.dumps(value).decode()


def parse_completion(body: bytes) -> ChatResult:
    """A chat completion body -> ChatResult; a truncated or malformed body is retryable."""
    try:
        data = loads(body)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return ChatResult(
            content=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            logprobs=(choice.get("logprobs") or {}).get("content"),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _Retryable(f"truncated or malformed response body ({len(body)} bytes)") from None


class ChatClient:
    """Chat completions against one teacher; use as `async with ChatClient(...) as client`."""

    def __init__(
        self,
        teacher: Teacher,
        endpoints: list[str],
        retry: Retry,
        errors: ErrorWindow,
        api_key: str | None = None,
        *,
        max_in_flight: int | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigError(f"teachers.{teacher.name}: no endpoints to send requests to")
        self.teacher = teacher
        self.endpoints = [_Endpoint(url.rstrip("/")) for url in endpoints]
        self.retry = retry
        self.errors = errors
        self.limit = max_in_flight or teacher.max_in_flight
        self.stats = ClientStats()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._slots = asyncio.Semaphore(self.limit)
        self._next = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "ChatClient":
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=aiohttp.ClientTimeout(total=self.teacher.timeout_s),
            json_serialize=dumps,
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def in_flight(self) -> int:
        return sum(e.outstanding for e in self.endpoints)

    def _pick(self) -> _Endpoint:
        # Fewest outstanding requests; rotate the start so equal endpoints share the load.
        n = len(self.endpoints)
        order = [self.endpoints[(self._next + i) % n] for i in range(n)]
        self._next = (self._next + 1) % n
        return min(order, key=lambda e: e.outstanding)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * (2 ** (attempt - 1)))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # equal jitter: spread retries, keep a floor
        return max(delay, retry_after) if retry_after is not None else delay

    async def _attempt(self, payload: dict[str, Any]) -> ChatResult:
        assert self._session is not None, "use `async with ChatClient(...)`"
        endpoint = self._pick()
        endpoint.outstanding += 1
        endpoint.sent += 1
        self.stats.attempts += 1
        try:
            async with self._session.post(f"{endpoint.url}/chat/completions", json=payload) as resp:
                body = await resp.read()
                status = resp.status
                headers = resp.headers
        except asyncio.TimeoutError:
            raise _Retryable(f"timeout after {self.teacher.timeout_s:g}s at {endpoint.url}") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"{type(exc).__name__} at {endpoint.url}") from None
        finally:
            endpoint.outstanding -= 1
        if status == 200:
            return parse_completion(body)
        text = body[:300].decode("utf-8", "replace")
        if status == 429 or status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status} from {endpoint.url}", _retry_after(headers) if status == 429 else None)
        reason = "over_length" if any(h in text.lower() for h in OVER_LENGTH_HINTS) else "request_failed"
        raise RequestFailed(reason, f"HTTP {status} from {endpoint.url}: {text}")

    async def chat(self, payload: dict[str, Any]) -> ChatResult:
        """POST one chat completion (model is filled in); retries per config; raises RequestFailed or RunAborted."""
        payload = {"model": self.teacher.model, **payload}
        for attempt in range(1, self.retry.max_attempts + 1):
            self.errors.check()
            try:
                async with self._slots:
                    result = await self._attempt(payload)
            except _Retryable as exc:
                self.errors.record(False, str(exc))
                if attempt == self.retry.max_attempts:
                    self.stats.failures += 1
                    raise RequestFailed("request_failed", f"{exc} (after {attempt} attempts)") from None
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt, exc.retry_after))
                continue
            except RequestFailed as exc:
                # An over-long prompt is that prompt's fault; any other 4xx (bad model name, bad key) hits every request.
                self.errors.record(exc.reason == "over_length", exc.detail)
                self.stats.failures += 1
                raise exc
            self.errors.record(True)
            self.stats.count(result)
            return result
        raise AssertionError("unreachable")
