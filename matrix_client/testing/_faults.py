"""Scripted faults and the request log of the fake homeserver."""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from typing import Any

import attrs


@attrs.frozen
class Fault:
    """One scripted answer that replaces (or precedes) the normal handling.

    Build them with the class methods; :meth:`FakeHomeserver.inject` queues them
    for a method + path pattern, and each is used once, in order.
    """

    kind: str  # "response" | "connect_error" | "lost_response" | "delay"
    status: int = 0
    body: Any = None  # JSON-able object, or bytes for a raw body
    headers: dict[str, str] = attrs.field(factory=dict)
    delay_s: float = 0.0

    @classmethod
    def error(
        cls,
        status: int,
        errcode: str,
        message: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Fault:
        """A Matrix error response, e.g. ``Fault.error(403, "M_FORBIDDEN", "no")``."""
        body = {"errcode": errcode, "error": message or errcode, **extra}
        return cls("response", status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def http_status(cls, status: int, text: str = "") -> Fault:
        """A non-Matrix error page, as a reverse proxy sends (e.g. 502 Bad Gateway)."""
        body = (text or f"<html><body>{status}</body></html>").encode()
        return cls("response", status=status, body=body, headers={"content-type": "text/html"})

    @classmethod
    def rate_limited(
        cls, *, retry_after_s: float | None = None, retry_after_ms: int | None = None
    ) -> Fault:
        """429 ``M_LIMIT_EXCEEDED`` with a ``Retry-After`` header and/or ``retry_after_ms``."""
        headers = {} if retry_after_s is None else {"Retry-After": f"{retry_after_s:g}"}
        extra = {} if retry_after_ms is None else {"retry_after_ms": retry_after_ms}
        return cls.error(429, "M_LIMIT_EXCEEDED", "Too Many Requests", headers=headers, **extra)

    @classmethod
    def unknown_token(cls, *, soft_logout: bool = False) -> Fault:
        """401 ``M_UNKNOWN_TOKEN`` (the token itself is left valid on the fake)."""
        return cls.error(401, "M_UNKNOWN_TOKEN", "Invalid access token", soft_logout=soft_logout)

    @classmethod
    def json(cls, status: int, body: Any, *, headers: dict[str, str] | None = None) -> Fault:
        """Any response, e.g. a malformed ``/sync`` body."""
        return cls("response", status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def connect_error(cls) -> Fault:
        """``httpx.ConnectError``: the request never reached the server."""
        return cls("connect_error")

    @classmethod
    def lost_response(cls) -> Fault:
        """The server applies the request, then the client sees ``httpx.ReadError``."""
        return cls("lost_response")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` (trio time) before handling the request normally."""
        return cls("delay", delay_s=seconds)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (until the client gives up or is cancelled)."""
        return cls("delay", delay_s=math.inf)


@attrs.define
class FaultRule:
    method: str | None
    pattern: str
    faults: deque[Fault]

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        pattern = self.pattern if self.pattern.startswith("/_matrix") else "*" + self.pattern
        return fnmatch.fnmatchcase(path, pattern)


@attrs.frozen
class LoggedRequest:
    """A request the fake received. ``path`` is decoded (``!room:server`` readable)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, raw bytes for non-JSON bodies, None when empty
    user_id: str | None
    fault: str | None  # the scripted fault applied to it, if any
    headers: dict[str, str] = attrs.field(factory=dict)  # lower-case names, no Authorization
