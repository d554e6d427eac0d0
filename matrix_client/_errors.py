"""Exceptions raised by :mod:`matrix_client`.

One class per failure kind, so callers catch what they can act on:

* :class:`MatrixError` — the homeserver answered with an error response.
* :class:`UnknownTokenError` — the access token is dead (``M_UNKNOWN_TOKEN``); fatal.
* :class:`RateLimitedError` — still 429 after the retry budget ran out.
* :class:`TransportError` — no usable answer (network failure, timeout) after retries.
* :class:`EventTooLargeError` — refused locally, before any request was made.
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
    """

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


class EventTooLargeError(ValueError):
    """The event would exceed the 64 KiB limit; raised before any request is made."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"event of ~{size} bytes exceeds the {limit} byte limit")
        self.size = size
        self.limit = limit


class TransportError(Exception):
    """No usable response: connection failure, lost response or timeout.

    Raised after the retry budget ran out (idempotent requests) or at once
    (non-idempotent requests, where a lost response may still have been applied).
    ``__cause__`` holds the underlying httpx/trio exception.
    """
