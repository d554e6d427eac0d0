"""The ops server over real loopback sockets, and its connection handler over
memory streams (where the deadlines run on the virtual clock)."""

from __future__ import annotations

import json
from functools import partial

import attrs
import httpx
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from surfaces.metrics import CONTENT_TYPE, Metrics
from surfaces.ops import HealthState, ServerLimits, handle_connection, serve_ops


@attrs.define
class Probe:
    """A DB probe the test steers: healthy, failing, or blocked until released."""

    healthy: bool = True
    block: bool = False
    entered: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self) -> bool:
        if self.block:
            self.entered.set()
            await self.release.wait()
        return self.healthy


@attrs.define
class Ops:
    url: str
    port: int
    metrics: Metrics
    health: HealthState
    probe: Probe
    client: httpx.AsyncClient


async def start_ops(nursery, clock, limits: ServerLimits | None = None) -> Ops:
    probe = Probe()
    health = HealthState(stale_after_s=100.0, db_probe=probe, clock=clock)
    metrics = Metrics(version="9.9.9", clock=clock)
    port = await nursery.start(
        partial(serve_ops, "127.0.0.1", 0, metrics, health, limits=limits or ServerLimits())
    )
    url = f"http://127.0.0.1:{port}"
    return Ops(url, port, metrics, health, probe, httpx.AsyncClient(base_url=url))


@pytest.fixture
async def ops(nursery, clock):
    ops = await start_ops(nursery, clock)
    async with ops.client:
        yield ops


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, half-close, read everything the server answers."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        try:
            await stream.send_all(data)
            await stream.send_eof()
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    received += chunk
        except trio.BrokenResourceError:  # the server closed on us: what came is the answer
            pass
    return received


async def test_reports_a_real_port(ops):
    assert ops.port > 0


async def test_healthz_ok_then_stale_sync_then_failing_database(ops, clock):
    ops.health.sync_loop_started()
    ops.health.sync_succeeded()

    response = await ops.client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()["status"] == "ok"

    clock.now += 101
    response = await ops.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["sync"]

    ops.health.sync_succeeded()
    ops.probe.healthy = False
    response = await ops.client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["sync"]["ok"] is True


async def test_readyz(ops):
    response = await ops.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["startup"]

    ops.health.mark_ready()
    assert (await ops.client.get("/readyz")).status_code == 200

    ops.health.mark_shutting_down()
    response = await ops.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["shutdown"]


async def test_metrics(ops):
    ops.metrics.turn_started()
    ops.metrics.observe_matrix_request("sync", 200, 0.5)

    response = await ops.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert values[("surfaces_turns_active", ())] == 1
    assert (
        values[("surfaces_matrix_requests_total", (("endpoint", "sync"), ("status", "200")))] == 1
    )
    assert values[("surfaces_build_info", (("version", "9.9.9"),))] == 1


async def test_metrics_openmetrics_on_request(ops):
    response = await ops.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_query_string_is_ignored(ops):
    assert (await ops.client.get("/readyz?verbose=1")).status_code == 503


async def test_unknown_path_is_404_and_other_methods_405(ops):
    response = await ops.client.get("/admin")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}

    response = await ops.client.post("/metrics", content=b"x" * 100_000)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"

    response = await ops.client.head("/healthz")
    assert response.status_code == 405
    assert response.content == b""


async def test_garbage_does_not_kill_the_server(ops):
    answer = await raw_exchange(ops.port, b"\x00\x01\x02 nonsense\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")

    answer = await raw_exchange(ops.port, b"")  # connect and leave
    assert answer == b""

    answer = await raw_exchange(ops.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n")  # cut short
    assert answer.startswith(b"HTTP/1.1 400 ")

    assert (await ops.client.get("/readyz")).status_code == 503


async def test_oversized_request_head_is_refused(ops):
    for pad in (17_000, 20_000, 500_000):
        huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n"
        answer = await raw_exchange(ops.port, huge)
        assert answer.startswith(b"HTTP/1.1 431 "), pad
    near_cap = b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 16_000 + b"\r\n\r\n"
    assert (await raw_exchange(ops.port, near_cap)).startswith(b"HTTP/1.1 503 ")
    assert (await ops.client.get("/metrics")).status_code == 200


async def test_excess_connections_are_closed(nursery, clock):
    ops = await start_ops(nursery, clock, ServerLimits(max_connections=1))
    ops.health.sync_loop_started()
    ops.probe.block = True
    async with ops.client, trio.open_nursery() as inner:
        first: list[httpx.Response] = []

        async def slow_request() -> None:
            first.append(await ops.client.get("/healthz"))

        inner.start_soon(slow_request)
        await ops.probe.entered.wait()  # the only slot is taken

        assert await raw_exchange(ops.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n") == b""

        ops.probe.release.set()

    assert first[0].status_code == 200
    assert (await raw_exchange(ops.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
        b"HTTP/1.1 503 "
    )


async def test_cancellation_stops_the_server_with_connections_open(clock):
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            ops = await start_ops(nursery, clock)
            idle = await trio.open_tcp_stream("127.0.0.1", ops.port)
            await idle.send_all(b"GET /hea")
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    # the listener is closed: a new connection is refused
    with pytest.raises(OSError, match="all attempts to connect"):
        await trio.open_tcp_stream("127.0.0.1", ops.port)
    await idle.aclose()


# -- the connection handler over memory streams (virtual time) -------------------


@pytest.fixture
def memory_ops(clock):
    health = HealthState(stale_after_s=100.0, clock=clock)
    return Metrics(clock=clock), health


async def test_handler_answers_over_a_memory_stream(memory_ops, autojump_clock):
    metrics, health = memory_ops
    health.mark_ready()
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(handle_connection, server, metrics, health))
        await client.send_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := await client.receive_some():
            received += chunk
        await client.aclose()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["status"] == "ok"


async def test_slowloris_is_dropped_at_the_read_deadline(memory_ops, autojump_clock):
    metrics, health = memory_ops
    client, server = trio.testing.memory_stream_pair()
    limits = ServerLimits(read_timeout_s=10.0)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 1000 + b"\r\n"
    start = trio.current_time()
    finished_at: list[float] = []

    async def serve() -> None:
        await handle_connection(server, metrics, health, limits=limits)
        finished_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        # one byte a second: every read makes progress, only a deadline on the
        # whole head stops it
        for byte in request:
            try:
                await client.send_all(bytes([byte]))
            except trio.BrokenResourceError:
                break  # the server hung up
            await trio.sleep(1)
        assert await client.receive_some() == b""  # closed without an answer

    assert finished_at[0] - start == pytest.approx(10.0, abs=1.0)


async def test_client_that_never_closes_is_released_after_linger(memory_ops, autojump_clock):
    metrics, health = memory_ops
    client, server = trio.testing.memory_stream_pair()
    limits = ServerLimits(linger_s=2.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(handle_connection, server, metrics, health, limits=limits))
        start = trio.current_time()
        await client.send_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        while await client.receive_some():
            pass  # response, then EOF from the half-close
    # the handler returned on its own, though the client never closed
    assert trio.current_time() - start == pytest.approx(2.0, abs=0.1)


async def test_handler_turns_internal_errors_into_500(memory_ops, autojump_clock):
    _, health = memory_ops

    class BrokenMetrics:
        def render_for(self, accept: str | None) -> tuple[bytes, str]:
            raise ValueError("a bug")

    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(handle_connection, server, BrokenMetrics(), health))
        await client.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := await client.receive_some():
            received += chunk
        await client.aclose()
    assert received.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
