"""Base-url normalisation and endpoint building (agent-protocol.md, "Endpoint")."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
# An operator may paste a full endpoint (".../v1/agent_ws/41/"); everything from the
# first "/v1/agent_ws" segment on is dropped so the base is the part before it.
_PASTED_ENDPOINT = re.compile(r"/v1/agent_ws(?:/.*)?$")


def normalize_base_url(base: str) -> str:
    """Return the canonical WebSocket base for an agent's ``base_url``.

    Keeps scheme, host, port and path; drops query and fragment; strips a pasted
    ``/v1/agent_ws/...`` tail; ensures a trailing ``/``; maps ``http``→``ws`` and
    ``https``→``wss`` (``ws``/``wss`` are kept).

    >>> normalize_base_url("http://agents.internal:7000/agent_17?x=1#top")
    'ws://agents.internal:7000/agent_17/'

    Raises:
        ValueError: the scheme is not http/https/ws/wss or there is no host.
    """
    parts = urlsplit(base.strip())
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"agent base url must be http(s):// or ws(s)://, got {base!r}")
    if not parts.hostname:
        raise ValueError(f"agent base url has no host: {base!r}")
    path = _PASTED_ENDPOINT.sub("", parts.path)
    path = path.rstrip("/") + "/"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def endpoint_url(base: str, chat_id: str) -> str:
    """``{normalised base}v1/agent_ws/{chat_id}/``.

    >>> endpoint_url("http://agents.internal:7000/agent_17", "41")
    'ws://agents.internal:7000/agent_17/v1/agent_ws/41/'
    """
    if not chat_id or not chat_id.strip():
        raise ValueError("chat id must not be empty")
    return f"{normalize_base_url(base)}v1/agent_ws/{quote(chat_id, safe='')}/"


@attrs.frozen
class WsTarget:
    """Where a turn connects: what a connector needs to open the byte stream.

    ``host_header`` is what goes into the HTTP ``Host:`` header (``host:port``, or
    just ``host`` on the scheme's default port); ``resource`` is the request path.
    """

    url: str
    host: str
    port: int
    secure: bool
    host_header: str
    resource: str

    @classmethod
    def from_url(cls, url: str) -> WsTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a WebSocket url: {url!r}")
        if not parts.hostname:
            raise ValueError(f"url has no host: {url!r}")
        secure = parts.scheme == "wss"
        port = parts.port if parts.port is not None else (443 if secure else 80)
        host_header = parts.netloc.rsplit("@", 1)[-1]
        return cls(
            url=url,
            host=parts.hostname,
            port=port,
            secure=secure,
            host_header=host_header,
            resource=parts.path or "/",
        )
