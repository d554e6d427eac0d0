"""The resolved-address cache for host-name agents (``agent_client._addrs``)."""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from agent_client import (
    AGENT_UNAVAILABLE,
    AgentClient,
    AgentFailure,
    TextChunk,
    TurnEnd,
    TurnLimits,
    _addrs,
)
from agent_client.reference import ReferenceAgent, serve_reference_agent

FAST = TurnLimits(connect_s=5, status_s=5, first_text_s=5, idle_s=5, total_s=20, retries=0)
NOT_FOUND = socket.gaierror(socket.EAI_NONAME, "Name or service not known")


class FakeSock:
    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeNet:
    """Replaces the resolver and ``connect``; records both."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str] | OSError] = {}
        self.resolved: list[str] = []
        self.connects: list[str] = []
        self.refused: set[str] = set()
        self.hanging: set[str] = set()
        monkeypatch.setattr(_addrs, "_getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(_addrs, "_connect_one", self.connect)

    async def getaddrinfo(self, host: str, port: int) -> list[tuple[Any, ...]]:
        await trio.lowlevel.checkpoint()
        self.resolved.append(host)
        answer = self.answers[host]
        if isinstance(answer, OSError):
            raise answer
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in answer
        ]

    async def connect(self, address: _addrs.Address) -> FakeSock:
        ip = address[3][0]
        self.connects.append(ip)
        await trio.lowlevel.checkpoint()
        if ip in self.hanging:
            await trio.sleep_forever()
        if ip in self.refused:
            raise ConnectionRefusedError(111, "Connection refused")
        return FakeSock(ip)


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> FakeNet:
    return FakeNet(monkeypatch)


async def connect(host: str = "agent.test") -> str:
    sock = await _addrs.connect_host(host, 8000)
    assert isinstance(sock, FakeSock)
    return sock.ip


async def test_resolved_once_within_the_ttl_and_again_after(
    mock_clock: MockClock, net: FakeNet
) -> None:
    net.answers["agent.test"] = ["10.0.0.1"]
    assert await connect() == "10.0.0.1"
    mock_clock.jump(_addrs.ADDRESS_TTL_S - 1)
    assert await connect() == "10.0.0.1"
    assert net.resolved == ["agent.test"]
    mock_clock.jump(1)
    assert await connect() == "10.0.0.1"
    assert net.resolved == ["agent.test"] * 2
    assert net.connects == ["10.0.0.1"] * 3


async def test_the_address_that_connected_is_tried_first(
    mock_clock: MockClock, net: FakeNet
) -> None:
    net.answers["localhost"] = ["::1", "127.0.0.1"]
    net.refused.add("::1")  # an agent listening on 127.0.0.1 only
    assert await connect("localhost") == "127.0.0.1"
    assert await connect("localhost") == "127.0.0.1"
    assert await connect("localhost") == "127.0.0.1"
    assert net.connects == ["::1", "127.0.0.1", "127.0.0.1", "127.0.0.1"]
    assert net.resolved == ["localhost"]


async def test_refused_cached_address_resolves_again_at_once(
    mock_clock: MockClock, net: FakeNet
) -> None:
    net.answers["agent.test"] = ["10.0.0.1"]
    await connect()
    net.answers["agent.test"] = ["10.0.0.2"]  # the agent moved
    net.refused.add("10.0.0.1")
    assert await connect() == "10.0.0.2"
    assert await connect() == "10.0.0.2"
    assert net.connects == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]
    assert net.resolved == ["agent.test"] * 2


async def test_hung_cached_address_is_dropped(autojump_clock: MockClock, net: FakeNet) -> None:
    net.answers["agent.test"] = ["10.0.0.1"]
    await connect()
    net.hanging.add("10.0.0.1")
    with trio.move_on_after(5) as scope:  # the turn's connect deadline
        await connect()
    assert scope.cancelled_caught
    net.answers["agent.test"] = ["10.0.0.2"]
    with trio.fail_after(1):
        assert await connect() == "10.0.0.2"  # the next attempt resolves afresh
    assert net.resolved == ["agent.test"] * 2


async def test_resolution_failures_are_not_cached(mock_clock: MockClock, net: FakeNet) -> None:
    net.answers["agent.test"] = NOT_FOUND
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            await connect()
    net.answers["agent.test"] = []
    with pytest.raises(OSError, match="no results"):
        await connect()
    net.answers["agent.test"] = ["10.0.0.1"]
    assert await connect() == "10.0.0.1"
    assert net.resolved == ["agent.test"] * 4
    assert net.connects == ["10.0.0.1"]


async def test_all_addresses_failing_is_one_oserror_and_not_cached(
    mock_clock: MockClock, net: FakeNet
) -> None:
    net.answers["agent.test"] = ["::1", "127.0.0.1"]
    net.refused.update(["::1", "127.0.0.1"])
    for _ in range(2):
        with pytest.raises(
            OSError, match=r"all attempts to connect to agent\.test:8000 failed: .*refused"
        ):
            await connect()
    assert net.resolved == ["agent.test"] * 2


async def test_happy_eyeballs_on_a_fresh_answer(autojump_clock: MockClock, net: FakeNet) -> None:
    net.answers["agent.test"] = ["::1", "::2", "10.0.0.1"]
    net.hanging.add("::1")  # a black hole: the next address starts after 250 ms
    start = trio.current_time()
    assert await connect() == "10.0.0.1"
    assert trio.current_time() - start == pytest.approx(0.25)
    assert net.connects == ["::1", "10.0.0.1"]  # families interleaved (RFC 6555)
    with trio.fail_after(1):  # not the black hole again
        assert await connect() == "10.0.0.1"
    assert net.connects[2:] == ["10.0.0.1"]


async def test_cancelled_happy_eyeballs_raises_one_cancelled(
    autojump_clock: MockClock, net: FakeNet
) -> None:
    """Cancelled while several addresses are being tried (a nursery inside): the caller
    sees one ``Cancelled``, never an exception group."""
    net.answers["agent.test"] = ["::1", "10.0.0.1"]
    net.hanging.update(["::1", "10.0.0.1"])
    seen: list[BaseException] = []
    with trio.move_on_after(1) as scope:
        try:
            await connect()
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(exc) for exc in seen] == [trio.Cancelled]
    assert net.connects == ["::1", "10.0.0.1"]


async def test_cache_is_bounded(
    mock_clock: MockClock, net: FakeNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_addrs, "ADDRESS_CACHE_SIZE", 2)
    for host in "abc":
        net.answers[host] = ["10.0.0.1"]
        await connect(host)
    await connect("c")  # kept
    await connect("a")  # the oldest, dropped when "c" came
    assert net.resolved == ["a", "b", "c", "a"]
    assert list(_addrs._cache()) == [("c", 8000), ("a", 8000)]
    _addrs.clear_address_cache()
    await connect("c")
    assert net.resolved[-1] == "c"


# --- whole turns over real sockets --------------------------------------------------


@pytest.fixture
async def agent_port(nursery: trio.Nursery, tmp_path: Path) -> int:
    ref = ReferenceAgent(tmp_path, chunk_delay_s=0)
    return await nursery.start(partial(serve_reference_agent, agent=ref), "127.0.0.1", 0, tmp_path)


class CountingResolver:
    """Counts resolver calls; answers ``answer`` (an IP, an error) or really resolves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: str | OSError | None = None):
        self.calls: list[str] = []
        self.answer = answer
        self._real = _addrs._getaddrinfo
        monkeypatch.setattr(_addrs, "_getaddrinfo", self.resolve)

    async def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        if isinstance(self.answer, OSError):
            raise self.answer
        return await self._real(self.answer or host, port)


async def instant_turn(client: AgentClient, base: str) -> int:
    async with client.turn(base, "7", "/instant") as turn:
        assert [event async for event in turn] == [TextChunk("ok"), TurnEnd(1)]
    return turn.attempts


async def test_localhost_resolves_once_for_two_turns(
    agent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = CountingResolver(monkeypatch)
    client = AgentClient(FAST)
    base = f"http://localhost:{agent_port}"
    assert await instant_turn(client, base) == 1
    assert await instant_turn(client, base) == 1
    assert resolver.calls == ["localhost"]
    preferred = _addrs._cache()[("localhost", agent_port)].addresses[0]
    assert preferred[3][:2] == ("127.0.0.1", agent_port)


async def test_stale_cached_address_in_a_turn(
    agent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on: where the agent was
        await sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    stale = (socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", dead))
    _addrs._cache()[("agent.test", agent_port)] = _addrs._Entry(
        [stale], trio.current_time() + _addrs.ADDRESS_TTL_S
    )
    resolver = CountingResolver(monkeypatch, "127.0.0.1")
    client = AgentClient(FAST)  # no retries: the fresh look-up is in the same attempt
    assert await instant_turn(client, f"http://agent.test:{agent_port}") == 1
    assert resolver.calls == ["agent.test"]


async def test_resolution_error_in_a_turn(agent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"http://agent.test:{agent_port}"
    resolver = CountingResolver(monkeypatch, NOT_FOUND)
    with pytest.raises(AgentFailure) as info:
        await instant_turn(AgentClient(FAST), base)
    failure = info.value
    assert (failure.code, failure.retryable, failure.attempts) == (AGENT_UNAVAILABLE, True, 1)
    assert "connect failed: " in str(failure.details)
    assert "Name or service not known" in str(failure.details)
    resolver.answer = "127.0.0.1"  # not cached: asked again
    assert await instant_turn(AgentClient(FAST), base) == 1
    assert resolver.calls == ["agent.test"] * 2
