"""A counting HTTP forwarder in front of the real vLLM server: a second "endpoint", and a request counter.

It forwards every request unchanged (aiohttp, in a background thread; tests/support/proxy.py) and
counts chat completion requests, so tests can see which endpoint got how many
requests and that a re-run sent none.
"""

from __future__ import annotations

import threading
from collections import Counter

from aiohttp import web

from tests.support.proxy import LoopbackProxy

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class CountingProxy(LoopbackProxy):
    session_timeout_s = 300.0
    max_body = 64 * 1024 * 1024

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def chat_requests(self) -> int:
        with self._lock:
            return self.counts["/v1/chat/completions"]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    async def handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self.counts[request.path] += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
            return web.Response(status=upstream.status, body=payload, headers=out)
