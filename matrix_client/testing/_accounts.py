"""Accounts of the fake homeserver: versions, login and devices, profiles, presence."""

from __future__ import annotations

from typing import Any

import trio

from ._model import JsonDict, _Device, _HttpError, _Session

_PRESENCE_STATES = ("online", "unavailable", "offline")


class AccountHandlers:
    """Login, devices, profile and presence endpoints (a mixin of FakeHomeserver)."""

    # -- devices ------------------------------------------------------------------

    def _login_device(self, user_id: str, device_id: str, display_name: str | None) -> str:
        """A fresh token for ``device_id`` (created if new) → the token.

        Like Synapse: logging in to an existing device replaces its tokens and keeps
        the device (and its keys); a new device is a device-list change.
        """
        for token in [t for t, s in self._sessions.items() if s == _Session(user_id, device_id)]:
            del self._sessions[token]
        user = self._users[user_id]
        token = self._new_token(user.localpart)
        self._sessions[token] = _Session(user_id, device_id)
        user.access_token, user.device_id = token, device_id
        devices = self._devices.setdefault(user_id, {})
        if device_id not in devices:
            devices[device_id] = _Device(device_id, display_name)
            self._device_changed(user_id)
        return token

    def _delete_device(self, user_id: str, device_id: str) -> None:
        """As Synapse's ``delete_devices``: tokens, keys and inbox go; peers are told."""
        for token in [t for t, s in self._sessions.items() if s == _Session(user_id, device_id)]:
            del self._sessions[token]
        if self._devices.get(user_id, {}).pop(device_id, None) is not None:
            self._device_changed(user_id)

    def _device_changed(self, user_id: str) -> None:
        """Record a device-list change of ``user_id`` (``device_lists.changed`` in sync)."""
        self._pos += 1
        self._device_changes.append((self._pos, user_id))
        self._notify()

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
        display = body.get("initial_device_display_name")
        token = self._login_device(user_id, device, display if isinstance(display, str) else None)
        return {"user_id": user_id, "access_token": token, "device_id": device}

    async def _h_whoami(self, *, session: _Session, **_: Any) -> JsonDict:
        return {"user_id": session.user_id, "device_id": session.device_id, "is_guest": False}

    async def _h_logout(self, *, session: _Session, **_: Any) -> JsonDict:
        self._delete_device(session.user_id, session.device_id)
        return {}

    async def _h_delete_device(
        self, *, session: _Session, deviceId: str, body: Any, **_: Any
    ) -> JsonDict:
        """``DELETE /devices/{deviceId}`` behind user-interactive auth, as on Synapse:
        without ``auth`` a 401 with a session and the password flow; then the
        password of the session's user completes it."""
        auth = self._object(body).get("auth")
        challenge = {"flows": [{"stages": ["m.login.password"]}], "params": {}}
        if not isinstance(auth, dict):
            self._uia_sessions.add(session_id := f"uia{next(self._ids)}")
            raise _HttpError(
                401, "M_UNAUTHORIZED", "Auth required", session=session_id, **challenge
            )
        if auth.get("session") not in self._uia_sessions:
            raise _HttpError(400, "M_UNRECOGNIZED", "Unknown UIA session")
        identifier = auth.get("identifier") or {}
        user = self._users[session.user_id]
        if (
            auth.get("type") != "m.login.password"
            or identifier.get("user") not in (session.user_id, user.localpart)
            or auth.get("password") != user.password
        ):
            raise _HttpError(401, "M_FORBIDDEN", "Invalid password", **challenge)
        self._uia_sessions.discard(auth["session"])
        if deviceId not in self._devices.get(session.user_id, {}):
            raise _HttpError(404, "M_NOT_FOUND", "No device found")
        self._delete_device(session.user_id, deviceId)
        return {}

    # -- handlers: profile and presence -----------------------------------------------------

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

    async def _h_presence_put(
        self, *, session: _Session, userId: str, body: Any, **_: Any
    ) -> JsonDict:
        """As Synapse: own presence only; with presence disabled, accepted and ignored."""
        if userId != session.user_id:
            raise _HttpError(403, "M_FORBIDDEN", "Can only set your own presence state")
        content = dict(self._object(body))
        presence = content.pop("presence", None)
        status_msg = content.pop("status_msg", None)
        if presence not in _PRESENCE_STATES or content:
            raise _HttpError(400, "M_UNKNOWN", "Unable to parse state")
        if status_msg is not None and not isinstance(status_msg, str):
            raise _HttpError(400, "M_UNKNOWN", "status_msg must be a string.")
        if self.presence_enabled:
            self._presence[userId] = (presence, status_msg, trio.current_time())
        return {}

    async def _h_presence_get(self, *, userId: str, **_: Any) -> JsonDict:
        if not self.presence_enabled:
            return {"presence": "offline"}
        if userId not in self._users:
            raise _HttpError(404, "M_NOT_FOUND", "Unknown user")
        presence, status_msg, since = self._presence.get(userId, ("offline", None, None))
        answer: JsonDict = {"presence": presence}
        if since is not None:
            answer["last_active_ago"] = int((trio.current_time() - since) * 1000)
            answer["currently_active"] = presence == "online"
        if status_msg is not None:
            answer["status_msg"] = status_msg
        return answer
