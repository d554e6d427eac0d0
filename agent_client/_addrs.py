"""Resolved-address cache for agents given by host name (``ws://reference-agent:8000``).

Every turn opens a new connection, and resolving the name each time costs a resolver
call in a worker thread (≈0.3–0.4 ms CPU). ``connect_host`` keeps each
``(host, port)``'s ``getaddrinfo`` answer for ``ADDRESS_TTL_S`` (30 s; at most
``ADDRESS_CACHE_SIZE`` names, oldest dropped first; failed look-ups are not kept),
with the address that connected last in front. A hit is one direct ``connect`` to
that address, so ``localhost`` stops paying a failed ``::1`` attempt per turn. If it
fails, the entry is dropped and the name resolved again within the same connection
attempt (if it is cut short by the connect deadline, the next attempt resolves).

A fresh answer is tried as ``trio.open_tcp_stream`` does: families interleaved
(RFC 6555), the next address started 250 ms after the previous one unless that
failed sooner, the first to connect wins. The cache is a ``RunVar``: one per
``trio.run``, on that run's clock.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

import attrs
import structlog
import trio
from trio.socket import SOCK_STREAM

from ._errors import collapse_group

log = structlog.get_logger(__name__)

#: Seconds a resolved answer is reused (a moved agent is also noticed sooner: a
#: failed connect drops its entry).
ADDRESS_TTL_S = 30.0
#: Names kept at most (oldest dropped first); a bot talks to a handful of agents.
ADDRESS_CACHE_SIZE = 256
#: Happy-eyeballs delay before starting the next address (trio's default).
_STAGGER_S = 0.25

#: ``(family, type, proto, sockaddr)``: what ``socket()`` and ``connect()`` need.
Address = tuple[int, int, int, Any]


@attrs.define
class _Entry:
    addresses: list[Address]  # the one that connected last first
    expires_at: float


_CACHE: trio.lowlevel.RunVar[dict[tuple[str, int], _Entry]] = trio.lowlevel.RunVar(
    "agent_client_addresses"
)


def _cache() -> dict[tuple[str, int], _Entry]:
    try:
        return _CACHE.get()
    except LookupError:
        cache: dict[tuple[str, int], _Entry] = {}
        _CACHE.set(cache)
        return cache


def clear_address_cache() -> None:
    """Forget every resolved address (of the current ``trio.run``)."""
    _cache().clear()


async def _getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    """The resolver (tests replace it)."""
    return await trio.socket.getaddrinfo(host, port, type=SOCK_STREAM)


async def _connect_one(address: Address) -> trio.socket.SocketType:
    """A connected socket to one address; no socket is left open on failure."""
    family, type_, proto, sockaddr = address
    sock = trio.socket.socket(family, type_, proto)
    try:
        await sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_host(host: str, port: int) -> trio.socket.SocketType:
    """A socket connected to ``host:port``, resolving through the cache.

    Raises:
        OSError: resolution failed (``socket.gaierror``, not cached) or no address
            accepted the connection.
    """
    cache = _cache()
    key = (host, port)
    entry = cache.get(key)
    if entry is not None and trio.current_time() >= entry.expires_at:
        del cache[key]
        entry = None
    if entry is not None:
        address = entry.addresses[0]
        try:
            return await _connect_one(address)
        except OSError as exc:  # moved or restarted: resolve again, right now
            log.debug("agent_address_stale", host=host, port=port, error=repr(exc))
            _drop(cache, key, entry)
        except BaseException:  # timed out or cancelled: the next attempt resolves
            _drop(cache, key, entry)
            raise

    resolved_at = trio.current_time()
    addresses = [(info[0], info[1], info[2], info[4]) for info in await _getaddrinfo(host, port)]
    if not addresses:
        raise OSError(f"no results found for hostname lookup: {_host_port(host, port)}")
    _interleave_families(addresses)
    index, sock = await _connect_first(addresses, host, port)
    if index:
        addresses.insert(0, addresses.pop(index))
    cache.pop(key, None)  # re-inserted last: the oldest entry is first
    cache[key] = _Entry(addresses, resolved_at + ADDRESS_TTL_S)
    while len(cache) > ADDRESS_CACHE_SIZE:
        del cache[next(iter(cache))]
    return sock


def _drop(cache: dict[tuple[str, int], _Entry], key: tuple[str, int], entry: _Entry) -> None:
    if cache.get(key) is entry:  # a concurrent turn may have stored a fresher one
        del cache[key]


def _interleave_families(addresses: MutableSequence[Address]) -> None:
    """Move the first address of the other family to second place (RFC 6555 5.4)."""
    for i in range(1, len(addresses)):
        if addresses[i][0] != addresses[0][0]:
            if i != 1:
                addresses.insert(1, addresses.pop(i))
            break


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _connect_first(
    addresses: list[Address], host: str, port: int
) -> tuple[int, trio.socket.SocketType]:
    """Happy eyeballs over ``addresses``: ``(index, socket)`` of the first to connect."""
    if len(addresses) == 1:
        return 0, await _connect_one(addresses[0])
    errors: list[OSError] = []
    winner: tuple[int, trio.socket.SocketType] | None = None

    async def attempt(index: int, failed: trio.Event) -> None:
        nonlocal winner
        try:
            sock = await _connect_one(addresses[index])
        except OSError as exc:
            errors.append(exc)
            failed.set()
            return
        if winner is None:
            winner = (index, sock)
            nursery.cancel_scope.cancel()
        else:
            sock.close()

    try:
        async with trio.open_nursery() as nursery:
            for index in range(len(addresses)):
                failed = trio.Event()
                nursery.start_soon(attempt, index, failed)
                with trio.move_on_after(_STAGGER_S):
                    await failed.wait()
    except BaseException as exc:
        if winner is not None:
            winner[1].close()
        if isinstance(exc, BaseExceptionGroup):  # cancelled from outside: one Cancelled
            raise collapse_group(exc) from None
        raise
    if winner is None:
        details = "; ".join(str(exc) for exc in errors)
        msg = f"all attempts to connect to {_host_port(host, port)} failed"
        raise OSError(f"{msg}: {details}") from ExceptionGroup(msg, errors)
    return winner
