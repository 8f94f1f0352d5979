"""tests/generators/fault_proxy.py's FaultProxy plus three faults the reliability suite needs:

- 429 with a real Retry-After (every `retry_after_every`-th POST answers 429, Retry-After: 1);
- a server that dies and comes back: after `outage_after` POSTs the listening socket is closed (new
  connections are refused, requests on open connections are dropped) for `outage_s` seconds, then it
  listens again on the same port;
- a held teacher: POSTs wait until `release()` (keeps a run inside generation, holding the store lock).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Iterable

from aiohttp import web

from tests.generators.fault_proxy import FaultProxy


class ReliabilityProxy(FaultProxy):
    def __init__(self, upstream: str, kinds: Iterable[str] = (), every: int = 0, *, retry_after_every: int = 0,
                 outage_after: int = 0, outage_s: float = 0.0, hold: bool = False, timeout_sleep: float = 6.0) -> None:
        super().__init__(upstream, kinds, every, timeout_sleep)
        self.retry_after_every = retry_after_every
        self.outage_after, self.outage_s = outage_after, outage_s
        self.seen = 0
        self.retry_afters = 0
        self.refused_window = False
        self.outages = 0
        self.dropped = 0
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self.held = 0

    def release(self) -> None:
        self._released.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        is_chat = request.method == "POST" and request.path.endswith("/chat/completions")
        if is_chat:
            if not self._released.is_set():
                self.held += 1
                while not self._released.is_set():
                    await asyncio.sleep(0.05)
            if self.refused_window:  # the server is "dead": drop what still reaches it on an open connection
                self.dropped += 1
                request.transport.close()  # type: ignore[union-attr]
                return web.Response(status=503)
            self.seen += 1
            if self.outage_after and self.seen == self.outage_after:
                asyncio.get_running_loop().create_task(self._outage())
            if self.retry_after_every and self.seen % self.retry_after_every == 0:
                self.retry_afters += 1
                return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        return await super().handle(request)

    async def _outage(self) -> None:
        self.outages += 1
        self.refused_window = True
        await self._site.stop()
        await asyncio.sleep(self.outage_s)
        await self._listen(self.port)
        self.refused_window = False

    def _stopping(self) -> None:
        self._released.set()
