"""Presence methods: set our own, read anyone's.

What a homeserver without presence does differs: Synapse with
``presence.enabled: false`` accepts ``PUT .../status`` with ``200 {}`` and
ignores it, and answers every ``GET .../status`` with ``{"presence":
"offline"}`` (synapse/rest/client/presence.py); other servers refuse with 403,
404 or ``M_UNRECOGNIZED``. The refusals become :class:`PresenceDisabledError`;
Synapse's silent mode is recognisable by reading back our own presence after
setting ``online`` (see :meth:`PresenceMethods.set_presence`).
"""

from __future__ import annotations

from ._errors import MatrixError, PresenceDisabledError, ResponseFormatError
from ._http import CLIENT_V3, HttpCore, seg
from ._models import JsonDict, Presence, PresenceState


def _disabled(exc: MatrixError) -> bool:
    return (
        (exc.status == 403 and exc.errcode == "M_FORBIDDEN")
        or exc.status == 404
        or exc.errcode == "M_UNRECOGNIZED"
    )


class PresenceMethods(HttpCore):
    __slots__ = ()

    async def set_presence(self, presence: Presence, status_msg: str | None = None) -> None:
        """``PUT /presence/{ourUserId}/status``.

        Raises:
            PresenceDisabledError: the server refuses presence (PERMANENT: log once,
                stop trying). A Synapse with presence disabled does not refuse; to
                detect it, ``set_presence(Presence.ONLINE)`` then
                ``(await get_presence(own_id)).presence is Presence.OFFLINE``.
        """
        user = self._own_user_id()
        body: JsonDict = {"presence": Presence(presence).value}
        if status_msg is not None:
            body["status_msg"] = status_msg
        try:
            await self._call(
                "PUT",
                f"{CLIENT_V3}/presence/{seg(user)}/status",
                "PUT /presence/{userId}/status",
                json_body=body,
            )
        except MatrixError as exc:
            if _disabled(exc):
                raise PresenceDisabledError(exc.errcode, exc.status, exc.message) from exc
            raise

    async def get_presence(self, user_id: str) -> PresenceState:
        """``GET /presence/{userId}/status`` (fields other than ``presence`` optional).

        Raises:
            PresenceDisabledError: as for :meth:`set_presence`.
        """
        label = "GET /presence/{userId}/status"
        try:
            body = await self._call_object(
                "GET", f"{CLIENT_V3}/presence/{seg(user_id)}/status", label
            )
        except MatrixError as exc:
            if _disabled(exc) and exc.errcode != "M_FORBIDDEN":
                raise PresenceDisabledError(exc.errcode, exc.status, exc.message) from exc
            raise
        try:
            presence = Presence(body.get("presence"))
        except ValueError:
            raise ResponseFormatError(None, 200, f"{label}: unknown presence") from None
        status_msg = body.get("status_msg")
        ago = body.get("last_active_ago")
        active = body.get("currently_active")
        return PresenceState(
            presence=presence,
            status_msg=status_msg if isinstance(status_msg, str) else None,
            last_active_ago_ms=ago if isinstance(ago, int) and not isinstance(ago, bool) else None,
            currently_active=active if isinstance(active, bool) else None,
        )
