"""The Matrix client-server API client, composed from its method groups.

As mautrix-python's ``ClientAPI``: a request core (:mod:`._http`: transport,
one attempt, retries, byte caps) and small method groups on top of it, one
module each — account (:mod:`._auth`), sync (:mod:`._sync_api`), rooms and
state (:mod:`._rooms`, :mod:`._state`), messages (:mod:`._messages`), media
(:mod:`._media`), E2EE keys and to-device (:mod:`._keys`), presence
(:mod:`._presence`). The groups hold no state: every field lives on the core.
"""

from __future__ import annotations

import attrs

from ._auth import AuthMethods
from ._http import DEFAULT_LIMITS, DEFAULT_TIMEOUT, MAX_IN_FLIGHT, error_from_response
from ._keys import KeyMethods
from ._media import AUTHENTICATED_MEDIA_VERSION, MediaMethods, MediaStream, parse_mxc
from ._messages import MessageMethods
from ._presence import PresenceMethods
from ._rooms import RoomMethods
from ._sync_api import SyncMethods

__all__ = [  # also the old home of these names (bench and tests import some)
    "AUTHENTICATED_MEDIA_VERSION",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "MAX_IN_FLIGHT",
    "MatrixClient",
    "MediaStream",
    "error_from_response",
    "parse_mxc",
]


@attrs.define(eq=False)
class MatrixClient(
    AuthMethods,
    SyncMethods,
    RoomMethods,
    MessageMethods,
    MediaMethods,
    KeyMethods,
    PresenceMethods,
):
    """A trio-native Matrix client-server API client on an httpx transport.

    Use it as an async context manager; it owns one httpx transport (a pooled
    ``httpx.AsyncHTTPTransport`` unless ``transport`` is given)::

        async with MatrixClient("https://matrix.example", access_token=tok) as mx:
            me = await mx.whoami()
            await mx.send_event(room, "m.room.message", text_content("hi"),
                                txn_id=new_txn_id())

    Methods take no timeouts (wrap them in ``trio.fail_after``); retries follow
    ``retry`` (see :class:`RetryPolicy`). ``on_request(label, status, seconds)`` is
    called after every HTTP attempt with a bounded endpoint template such as
    ``"PUT /rooms/{roomId}/send"`` and status ``0`` for a network failure.

    Byte caps (decoded bodies, read streamed, never buffered beyond the cap):
    ``max_sync_bytes`` (64 MiB) for ``/sync``, ``max_response_bytes`` (8 MiB) for
    every other JSON answer — both a transient
    :class:`~matrix_client.ResponseTooLargeError` — and ``max_media_bytes``
    (100 MiB) for downloads without their own ``max_bytes`` (a permanent
    :class:`~matrix_client.MediaTooLargeError`).
    """
