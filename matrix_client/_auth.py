"""Account methods: password login, whoami, logout, profile display names."""

from __future__ import annotations

import structlog

from ._converter import structure
from ._errors import MatrixError
from ._http import CLIENT_V3, HttpCore, seg
from ._models import JsonDict, LoginResponse, WhoAmI

log = structlog.get_logger(__name__)


class AuthMethods(HttpCore):
    __slots__ = ()

    async def login_password(
        self,
        user: str,
        password: str,
        *,
        device_id: str,
        device_display_name: str | None = None,
    ) -> LoginResponse:
        """Log in with a password to a fixed ``device_id`` (keeps txn ids valid).

        Sets ``access_token``, ``user_id`` and ``device_id`` on the client.
        """
        body: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "device_id": device_id,
        }
        if device_display_name is not None:
            body["initial_device_display_name"] = device_display_name
        answer = await self._call_object(
            "POST", f"{CLIENT_V3}/login", "POST /login", json_body=body
        )
        result = structure(answer, LoginResponse, what="login")
        self.access_token = result.access_token
        self.user_id = result.user_id
        self.device_id = result.device_id
        log.info("matrix_logged_in", user_id=result.user_id, device_id=result.device_id)
        return result

    async def whoami(self) -> WhoAmI:
        """``GET /account/whoami``; sets ``user_id`` and ``device_id``."""
        body = await self._call_object("GET", f"{CLIENT_V3}/account/whoami", "GET /account/whoami")
        me = structure(body, WhoAmI, what="whoami")
        self.user_id = me.user_id
        if me.device_id is not None:
            self.device_id = me.device_id
        return me

    async def logout(self) -> None:
        """Invalidate the access token on the server and forget it."""
        await self._call("POST", f"{CLIENT_V3}/logout", "POST /logout", json_body={})
        self.access_token = None

    async def get_display_name(self, user_id: str) -> str | None:
        """The user's global display name, ``None`` when unset or unknown."""
        try:
            body = await self._call_object(
                "GET",
                f"{CLIENT_V3}/profile/{seg(user_id)}/displayname",
                "GET /profile/{userId}/displayname",
            )
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise
        name = body.get("displayname")
        return name if isinstance(name, str) else None
