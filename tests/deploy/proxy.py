"""A counting HTTP forwarder in front of the real vLLM server: a second "endpoint", and a request counter.

It forwards every request unchanged (aiohttp, in a background thread) and
counts chat completion requests, so tests can see which endpoint got how many
requests and that a re-run sent none.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> int:
        with self._lock:
            return self.counts["/v1/chat/completions"]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def __enter__(self) -> "CountingProxy":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("counting proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            async def forward(request: web.Request) -> web.Response:
                with self._lock:
                    self.counts[request.path] += 1
                body = await request.read()
                headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
                async with session.request(request.method, self.upstream + request.path_qs, data=body,
                                           headers=headers) as upstream:
                    payload = await upstream.read()
                    out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
                    return web.Response(status=upstream.status, body=payload, headers=out)

            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
