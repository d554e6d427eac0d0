"""A scripted agent endpoint for the prober: STATUS after a delay, or refused."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_server_stream


@attrs.define
class ProbeTarget:
    """What probes see: ``down`` refuses connections, ``status_delay_s`` delays STATUS."""

    nursery: trio.Nursery
    down: bool = False
    status_delay_s: float = 0.0
    connects: list[float] = attrs.Factory(list)
    paths: list[str] = attrs.Factory(list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def connect(self, target: Any) -> trio.abc.Stream:
        self.connects.append(trio.current_time())
        if self.down:
            raise ConnectionRefusedError("refused")
        client_end, server_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server_end)
        return client_end

    async def _serve(self, stream: trio.abc.Stream) -> None:
        try:
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, stream)
                self.paths.append(request.path)
                ws = await request.accept()
                # in flight: from the handshake to STATUS (what the limiter bounds)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await trio.sleep(self.status_delay_s)
                finally:
                    self.in_flight -= 1
                try:
                    await ws.send_message(json.dumps({"type": "STATUS", "state": "ready"}))
                    await ws.get_message()  # until the client closes
                except ConnectionClosed:
                    pass
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionClosed):
            pass


@pytest.fixture
def target(nursery: trio.Nursery) -> ProbeTarget:
    return ProbeTarget(nursery)
