"""The default connector and the per-turn fast paths (cached targets, direct connect to
IP literals); every turn on real sockets closes its socket."""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import pytest
import trio

from agent_client import (
    AGENT_UNAVAILABLE,
    AgentClient,
    AgentFailure,
    TextChunk,
    TurnEnd,
    TurnLimits,
    WsTarget,
    connect_tcp,
    endpoint_url,
)
from agent_client._client import _target
from agent_client._connect import _ip_literal_family
from agent_client.reference import ReferenceAgent, serve_reference_agent

FAST = TurnLimits(connect_s=5, status_s=5, first_text_s=5, idle_s=5, total_s=20, retries=0)


def _socket_closed(stream: trio.abc.Stream) -> bool:
    """True if ``stream`` is a (TLS over a) ``trio.SocketStream`` whose socket is closed."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket.fileno() == -1


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_target_is_cached_and_equal_to_a_fresh_parse() -> None:
    first = _target("http://agents.internal:7000/agent_17", "41")
    assert _target("http://agents.internal:7000/agent_17", "41") is first
    assert first == WsTarget.from_url(endpoint_url("http://agents.internal:7000/agent_17", "41"))
    assert _target("http://agents.internal:7000/agent_17", "42").resource.endswith("/42/")


@pytest.mark.parametrize(("base", "chat"), [("ftp://h/x", "1"), ("http://h", ""), ("", "1")])
def test_invalid_target_fails_every_time(base: str, chat: str) -> None:
    for _ in range(2):  # errors are not cached
        with pytest.raises(AgentFailure) as info:
            _target(base, chat)
        assert (info.value.code, info.value.retryable) == (AGENT_UNAVAILABLE, False)


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("127.0.0.1", socket.AF_INET),
        ("10.1.2.3", socket.AF_INET),
        ("::1", socket.AF_INET6),
        ("fe80::1%eth0", socket.AF_INET6),
        ("localhost", None),
        ("agents.internal", None),
        ("127.1", None),  # not a literal ipaddress accepts: resolved the normal way
    ],
)
def test_ip_literal_family(host: str, family: int | None) -> None:
    assert _ip_literal_family(host) == family


async def _listener(host: str) -> tuple[trio.SocketListener, int]:
    listeners = await trio.open_tcp_listeners(0, host=host)
    listener = listeners[0]
    return listener, listener.socket.getsockname()[1]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        pytest.param(
            "::1",
            marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
)
async def test_connect_tcp_direct_and_resolved(host: str) -> None:
    listener, port = await _listener("::1" if host == "::1" else "127.0.0.1")
    async with listener:
        url_host = f"[{host}]" if ":" in host else host
        target = WsTarget.from_url(f"ws://{url_host}:{port}/v1/agent_ws/1/")
        stream = await connect_tcp(target)
        async with stream, await listener.accept() as server:
            await stream.send_all(b"ping")
            assert await server.receive_some(4) == b"ping"
        assert isinstance(stream, trio.SocketStream)
        assert _socket_closed(stream)


async def test_connect_tcp_refused_is_an_oserror() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):  # an OSError: AGENT_UNAVAILABLE, retried
        await connect_tcp(WsTarget.from_url(f"ws://127.0.0.1:{port}/v1/agent_ws/1/"))


async def _drain(client: AgentClient, base: str, text: str) -> None:
    async with client.turn(base, "7", text) as turn:
        async for _ in turn:
            pass


async def test_turns_on_real_sockets_close_their_streams(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ReferenceAgent(tmp_path, chunk_delay_s=0)
    port = await nursery.start(partial(serve_reference_agent, agent=ref), "127.0.0.1", 0, tmp_path)
    streams: list[trio.SocketStream] = []

    async def tracking(target: WsTarget) -> trio.abc.Stream:
        stream = await connect_tcp(target)
        streams.append(stream)  # type: ignore[arg-type]
        return stream

    base = f"http://127.0.0.1:{port}"
    client = AgentClient(FAST, connector=tracking)
    async with client.turn(base, "7", "/instant") as turn:
        assert [event async for event in turn] == [TextChunk("ok"), TurnEnd(1)]
    # a "message too big" close does not wait for the agent: the socket is closed at once
    small = AgentClient(TurnLimits(max_frame_bytes=1000, retries=0), connector=tracking)
    with pytest.raises(AgentFailure, match="larger than"):
        await _drain(small, base, "/big 5000")
    async with client.turn(base, "7", "/instant") as turn:
        assert [event async for event in turn] == [TextChunk("ok"), TurnEnd(1)]
    assert len(streams) == 3
    assert all(_socket_closed(stream) for stream in streams)
    with trio.fail_after(2):
        await ref.wait_idle()


@pytest.mark.parametrize("phase", ["status", "first_text", "idle", "confirm", "after_end"])
async def test_cancel_on_real_sockets_closes_them(
    nursery: trio.Nursery, tmp_path: Path, phase: str
) -> None:
    ref = ReferenceAgent(tmp_path, chunk_delay_s=0)
    port = await nursery.start(partial(serve_reference_agent, agent=ref), "127.0.0.1", 0, tmp_path)
    base = f"http://127.0.0.1:{port}"
    streams: list[trio.abc.Stream] = []

    async def tracking(target: WsTarget) -> trio.abc.Stream:
        stream = await connect_tcp(target)
        streams.append(stream)
        return stream

    client = AgentClient(FAST, connector=tracking)
    if phase == "status":
        await _drain(client, base, "/no-status")  # the next connection gets no STATUS
    text = {
        "status": "hi",
        "first_text": "/silent",
        "idle": "/slow 0.5 3",  # cancelled in the gap after the first chunk
        "confirm": "/confirm",
        "after_end": "/instant",
    }[phase]
    seen: list[BaseException] = []
    with trio.move_on_after(0.3) as scope:
        try:
            async with client.turn(base, "7", text) as turn:
                async for event in turn:
                    if isinstance(event, TurnEnd):
                        await trio.sleep_forever()  # cancelled inside the block
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(exc) for exc in seen] == [trio.Cancelled]
    assert streams
    assert all(_socket_closed(stream) for stream in streams)
    with trio.fail_after(2):  # the agent saw the close: its handler ended
        await ref.wait_idle()
