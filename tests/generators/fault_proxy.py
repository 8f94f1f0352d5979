"""A fault-injecting HTTP proxy in front of a real (vLLM) server, for tests.

Every `every`-th POST to /chat/completions gets a fault, cycling through the
given kinds; everything else is forwarded unchanged. Runs its own event loop
in a thread so sync tests and subprocesses can use it (tests/support/proxy.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Iterable

from aiohttp import web

from tests.support.proxy import LoopbackProxy

KINDS = ("500", "429", "timeout", "truncated", "cut_json")


class FaultProxy(LoopbackProxy):
    def __init__(self, upstream: str, kinds: Iterable[str] = KINDS, every: int = 5, timeout_sleep: float = 6.0) -> None:
        super().__init__(upstream)
        self.kinds = itertools.cycle(list(kinds)) if kinds else None
        self.every = every
        self.timeout_sleep = timeout_sleep
        self.posts = 0
        self.injected: Counter[str] = Counter()
        self.auth_headers: set[str] = set()

    def _fault(self) -> str | None:
        self.posts += 1
        if self.kinds is None or self.every <= 0 or self.posts % self.every:
            return None
        kind = next(self.kinds)
        self.injected[kind] += 1
        return kind

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if "Authorization" in request.headers:
            self.auth_headers.add(request.headers["Authorization"])
        kind = self._fault() if request.method == "POST" and request.path.endswith("/chat/completions") else None
        if kind == "500":
            return web.json_response({"error": "injected"}, status=500)
        if kind == "503":
            return web.json_response({"error": "injected"}, status=503)
        if kind == "429":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0"})
        if kind == "400":
            return web.json_response({"error": "bad request (injected)"}, status=400)
        if kind == "timeout":
            await asyncio.sleep(self.timeout_sleep)
            return web.json_response({"error": "too late"}, status=504)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body, headers=headers) as up:
            payload = await up.read()
            status, ctype = up.status, up.headers.get("Content-Type", "application/json")
        if kind == "truncated":  # promise the whole body, send half, drop the connection
            resp = web.StreamResponse(status=status, headers={"Content-Type": ctype, "Content-Length": str(len(payload))})
            await resp.prepare(request)
            await resp.write(payload[: len(payload) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if kind == "cut_json":  # a well-framed response whose JSON is cut short
            return web.Response(body=payload[: len(payload) // 2], status=status, content_type="application/json")
        return web.Response(body=payload, status=status, headers={"Content-Type": ctype})
