"""How a turn gets its byte stream: the ``Connector`` type and the default one
(TCP, TLS over it for ``wss://``; IP literals directly, host names through the
resolved-address cache in ``_addrs``)."""

from __future__ import annotations

import functools
import ipaddress
import ssl
from collections.abc import Awaitable, Callable

import trio

from ._addrs import _connect_one, connect_host
from ._urls import WsTarget

Connector = Callable[[WsTarget], Awaitable[trio.abc.Stream]]


async def connect_tcp(target: WsTarget) -> trio.abc.Stream:
    """Default connector: TCP, or TLS over it for ``wss://``.

    An agent at an IP literal (the usual sidecar / loopback setup) is connected
    directly: one address, so trio's happy-eyeballs machinery (resolver call, a
    nursery and a task per attempt) would only add scheduling steps. A host name goes
    through the resolved-address cache (``_addrs``: answers kept ``ADDRESS_TTL_S`` =
    30 s, the address that connected last tried first, a failed connect re-resolves
    at once).
    """
    family = _ip_literal_family(target.host)
    if family is None:
        sock = await connect_host(target.host, target.port)
    else:
        sock = await _connect_one((family, trio.socket.SOCK_STREAM, 0, (target.host, target.port)))
    stream = trio.SocketStream(sock)
    if not target.secure:
        return stream
    # what trio.open_ssl_over_tcp_stream does after its own open_tcp_stream
    return trio.SSLStream(
        stream,
        ssl.create_default_context(),
        server_hostname=target.host,
        https_compatible=True,
    )


@functools.lru_cache(maxsize=256)
def _ip_literal_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` if ``host`` is an IP address literal, else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6:
        return trio.socket.AF_INET6
    return trio.socket.AF_INET
