"""The base of the tests' HTTP proxies in front of the real vLLM server (tests/deploy/proxy.py counts requests,
tests/generators/fault_proxy.py injects faults, tests/reliability/proxies.py adds outages and a held teacher).

A `LoopbackProxy` is an aiohttp server on a free loopback port, run on its own event loop in a daemon thread so
sync tests and subprocesses can use it; a subclass answers every request in `handle` (usually by forwarding it
with `self._session` to `self.upstream`).
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web


class LoopbackProxy:
    session_timeout_s: float = 120.0  # total time the forwarding client gives one upstream request
    max_body: int = 16 * 1024 * 1024  # largest request body accepted

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _stopping(self) -> None:
        """Called on the proxy's loop when it is asked to stop, before connections are closed."""

    async def _listen(self, port: int) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()

    async def _main(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.session_timeout_s))
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self._listen(0)
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        self._stopping()
        await self._runner.cleanup()
        await self._session.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    def __enter__(self):  # noqa: ANN204 (returns the subclass)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
