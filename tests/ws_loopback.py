"""A websocket server on 127.0.0.1 in a thread of its own, for tests of the live client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


class LoopbackWebsocketServer:
    """Subclasses implement ``_handler``; ``start``/``stop`` or ``with`` run it on a free port."""

    serve_options: dict[str, Any] = {}

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, **self.serve_options) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the loopback websocket server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)
