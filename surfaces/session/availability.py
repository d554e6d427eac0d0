"""Whether a failed request means "the homeserver is not answering" (wait and try
again) or "the homeserver answered no" (act on the answer).

At start-up the difference decides between a crash loop and a bot that comes up
on its own once the server is back: a homeserver that is restarting, a proxy
that shows its 502 page, a DNS name not resolving yet — all of these are waited
for; only an answer that comes from Matrix itself (an ``errcode``) and will not
change by waiting (wrong password, revoked token) ends the start.

The one classifier of failures stays matrix_client's
:func:`~matrix_client.classify_failure`;
this adds the start-up view: a *permanent* HTTP error without a Matrix ``errcode``
is a page from something in front of the homeserver (a proxy's 404 while the
upstream is down), not the homeserver's answer.
"""

from __future__ import annotations

from matrix_client import FailureKind, MatrixError, ResponseTooLargeError, classify_failure

_WAIT = frozenset({FailureKind.TRANSIENT, FailureKind.RATE_LIMITED})


def homeserver_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or every exception in a group) says the server is not there."""
    if isinstance(exc, BaseExceptionGroup):
        return all(homeserver_unavailable(e) for e in exc.exceptions)
    if isinstance(exc, ResponseTooLargeError):
        return False  # an answer too big to read: waiting will not shrink it
    kind = classify_failure(exc)
    if kind in _WAIT:
        return True
    # A permanent HTTP error without a Matrix errcode: a proxy's page, not an answer.
    return kind is FailureKind.PERMANENT and isinstance(exc, MatrixError) and exc.errcode is None
