"""Accounts of the fake homeserver: versions, login, whoami, logout, profiles."""

from __future__ import annotations

from typing import Any

import httpx

from ._model import (
    JsonDict,
    _HttpError,
    _Session,
)


class AccountHandlers:
    """Login and account endpoints (a mixin of FakeHomeserver)."""

    # -- handlers: auth -------------------------------------------------------------------

    async def _h_versions(self, **_: Any) -> JsonDict:
        return {"versions": list(self.versions), "unstable_features": {}}

    async def _h_login(self, *, body: Any, **_: Any) -> JsonDict:
        body = self._object(body)
        if body.get("type") != "m.login.password":
            raise _HttpError(400, "M_UNKNOWN", "Unknown login type")
        identifier = body.get("identifier") or {}
        name = identifier.get("user") or body.get("user") or ""
        user_id = name if name.startswith("@") else f"@{name}:{self.server_name}"
        user = self._users.get(user_id)
        if user is None or body.get("password") != user.password:
            raise _HttpError(403, "M_FORBIDDEN", "Invalid username or password")
        device = body.get("device_id") or f"DEV{next(self._ids)}"
        # Like Synapse: logging in to an existing device replaces its tokens.
        for token in [t for t, s in self._sessions.items() if s == _Session(user_id, device)]:
            del self._sessions[token]
        token = self._new_token(user.localpart)
        self._sessions[token] = _Session(user_id, device)
        user.access_token, user.device_id = token, device
        return {"user_id": user_id, "access_token": token, "device_id": device}

    async def _h_whoami(self, *, session: _Session, **_: Any) -> JsonDict:
        return {"user_id": session.user_id, "device_id": session.device_id, "is_guest": False}

    async def _h_logout(self, *, request: httpx.Request, **_: Any) -> JsonDict:
        token = request.headers["authorization"][len("Bearer ") :]
        self._sessions.pop(token, None)
        return {}

    async def _h_profile_get(self, *, userId: str, **_: Any) -> JsonDict:
        user = self._users.get(userId)
        if user is None:
            raise _HttpError(404, "M_NOT_FOUND", "Profile was not found")
        return {} if user.displayname is None else {"displayname": user.displayname}

    async def _h_profile_put(
        self, *, session: _Session, userId: str, body: Any, **_: Any
    ) -> JsonDict:
        if userId != session.user_id:
            raise _HttpError(403, "M_FORBIDDEN", "Cannot set another user's profile")
        name = self._object(body).get("displayname")
        self._users[userId].displayname = name if isinstance(name, str) else None
        return {}
