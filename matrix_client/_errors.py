"""Exceptions raised by :mod:`matrix_client`.

One class per failure kind, so callers catch what they can act on:

* :class:`MatrixError` — the homeserver answered with an error response.
* :class:`UnknownTokenError` — the access token is dead (``M_UNKNOWN_TOKEN``); fatal.
* :class:`RateLimitedError` — still 429 after the retry budget ran out.
* :class:`TransportError` — no usable answer (network failure, timeout) after retries.
* :class:`EventTooLargeError` — refused locally, before any request was made.
* :class:`ResponseTooLargeError` — a response body over the client's byte cap
  (a :class:`ResponseFormatError`: transient, backed off and retried).
* :class:`MediaTooLargeError` — a download over the caller's byte cap; permanent.
* :class:`PresenceDisabledError` — the homeserver refuses presence updates.

:func:`matrix_client.classify_failure` maps each of them to one
:class:`~matrix_client.FailureKind`; callers decide from that kind, not from
statuses.
"""

from __future__ import annotations


class MatrixError(Exception):
    """An error response from the homeserver.

    Attributes:
        errcode: the Matrix ``errcode`` (``M_FORBIDDEN`` …) or ``None`` when the body
            was not a Matrix error object (e.g. an HTML 502 page from a proxy).
        status: the HTTP status (``200`` for a malformed success response).
        message: the server's ``error`` text, or a short description.
        retry_after_s: how long the server asked us to wait, if it said so.
        body: the error response's JSON object, when it was one (user-interactive
            auth reads its ``session`` and ``flows`` from a 401).
    """

    body: dict | None = None

    def __init__(
        self,
        errcode: str | None,
        status: int,
        message: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(errcode, status, message, retry_after_s)
        self.errcode = errcode
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        code = self.errcode or "no errcode"
        text = f"{self.status} {code}: {self.message}"
        if self.retry_after_s is not None:
            text += f" (retry after {self.retry_after_s:g} s)"
        return text


class UnknownTokenError(MatrixError):
    """``M_UNKNOWN_TOKEN``: the access token was revoked or expired.

    Fatal for a bot: never retried. ``soft_logout`` tells whether the server
    allows logging in again to the same device (spec: soft logout).
    """

    def __init__(
        self,
        errcode: str | None,
        status: int,
        message: str,
        retry_after_s: float | None = None,
        *,
        soft_logout: bool = False,
    ) -> None:
        super().__init__(errcode, status, message, retry_after_s)
        self.soft_logout = soft_logout


class RateLimitedError(MatrixError):
    """429 / ``M_LIMIT_EXCEEDED`` that outlasted the :class:`RetryPolicy` budget.

    ``retry_after_s`` carries the server's last requested wait, if any, so a
    caller (e.g. an outbox) can schedule the next attempt itself.
    """


class ResponseFormatError(MatrixError):
    """A response whose body could not be understood (not JSON, missing fields).

    Treated as transient: it is usually a proxy or a restarting server.
    """


class ResponseTooLargeError(ResponseFormatError):
    """A response body grew past the client's cap for that kind of request.

    The body is read streamed and reading stops at ``limit + 1`` bytes, so a
    runaway or hostile server never makes us buffer more than the cap. It is a
    :class:`ResponseFormatError`, hence TRANSIENT: a homeserver that sends a
    runaway ``/sync`` body must not kill the bot; backing off is right (the
    :class:`~matrix_client.Syncer` retries with backoff, other idempotent
    requests within the :class:`~matrix_client.RetryPolicy` budget).

    Attributes:
        limit: the cap in bytes (decoded body, after any gzip/deflate).
        seen_at_least: bytes received (or declared by ``Content-Length``) when
            reading stopped; the body has at least this many.
    """

    def __init__(self, label: str, status: int, limit: int, seen_at_least: int) -> None:
        super().__init__(
            None, status, f"{label}: response body over {limit} bytes (>= {seen_at_least})"
        )
        self.limit = limit
        self.seen_at_least = seen_at_least


class PresenceDisabledError(MatrixError):
    """The homeserver refused a presence update in a way that means "no presence here".

    Raised by :meth:`~matrix_client.MatrixClient.set_presence` for ``403
    M_FORBIDDEN``, ``404`` and ``M_UNRECOGNIZED`` answers (servers that switch
    the endpoint off). PERMANENT: log once and stop trying. Synapse with
    ``presence.enabled: false`` does *not* answer like this: it accepts the
    ``PUT`` with ``200 {}`` and ignores it, and ``GET .../status`` answers
    ``{"presence": "offline"}`` (synapse/rest/client/presence.py). To tell that
    case apart, read your own presence back after setting ``online``: see
    :meth:`~matrix_client.MatrixClient.set_presence`.
    """


class EventTooLargeError(ValueError):
    """The event would exceed the 64 KiB limit; raised before any request is made."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"event of ~{size} bytes exceeds the {limit} byte limit")
        self.size = size
        self.limit = limit


class MediaTooLargeError(Exception):
    """A download's body is larger than the caller's ``max_bytes``.

    Reading stopped at ``max_bytes + 1`` bytes (or before reading, when the
    server declared a larger ``Content-Length``); nothing over the cap was ever
    buffered or handed to the caller. PERMANENT: the same media will not shrink.

    Attributes:
        limit: the cap in bytes.
        seen_at_least: bytes received or declared when reading stopped.
    """

    def __init__(self, limit: int, seen_at_least: int) -> None:
        super().__init__(f"media body over the {limit} byte limit (>= {seen_at_least} bytes)")
        self.limit = limit
        self.seen_at_least = seen_at_least


class TransportError(Exception):
    """No usable response: connection failure, lost response or timeout.

    Raised after the retry budget ran out (idempotent requests) or at once
    (non-idempotent requests, where a lost response may still have been applied).
    ``__cause__`` holds the underlying httpx/trio exception.
    """
