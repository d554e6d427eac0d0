"""Account methods: password login, whoami, logout, device deletion, profile display names."""

from __future__ import annotations

import structlog

from ._converter import structure
from ._errors import MatrixError, UnknownTokenError
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

    async def delete_device(self, device_id: str, *, password: str) -> None:
        """``DELETE /devices/{deviceId}`` with user-interactive auth by password.

        The first request carries no auth; the server answers 401 with a UIA
        ``session`` (and its ``flows``), and the second request completes the
        ``m.login.password`` stage in that session. Deleting a device also deletes
        its keys and its access tokens on the server. A device that is already
        gone is fine (404). Raises :class:`MatrixError` when the server offers no
        password stage or refuses the password.
        """
        path = f"{CLIENT_V3}/devices/{seg(device_id)}"
        label = "DELETE /devices/{deviceId}"
        try:
            await self._call("DELETE", path, label, json_body={})
            return
        except MatrixError as exc:
            if exc.status == 404:
                return
            challenge = None if isinstance(exc, UnknownTokenError) else exc.body
            if exc.status != 401 or challenge is None:
                raise
        flows = challenge.get("flows")
        stages = (
            [f.get("stages") for f in flows if isinstance(f, dict)]
            if isinstance(flows, list)
            else []
        )
        if not any(isinstance(s, list) and s == ["m.login.password"] for s in stages):
            raise MatrixError(None, 401, f"{label}: no password-only auth flow offered")
        auth: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self._own_user_id()},
            "password": password,
        }
        session = challenge.get("session")
        if isinstance(session, str):
            auth["session"] = session
        try:
            await self._call("DELETE", path, label, json_body={"auth": auth})
        except MatrixError as exc:
            if exc.status != 404:
                raise
        log.info("matrix_device_deleted", device_id=device_id)

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
