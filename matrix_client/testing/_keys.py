"""E2EE on the fake homeserver: device keys, one-time and fallback keys, to-device.

Modelled on the spec and on Synapse (``handlers/e2e_keys.py``,
``handlers/devicemessage.py``, ``handlers/sync.py``):

* ``/keys/upload`` stores the device keys (which must name the uploading user
  and device; a change is a device-list change), adds one-time keys (the same
  id with different content is a 400) and replaces fallback keys per algorithm
  (the same key again keeps its "used" flag). It answers the unclaimed counts,
  ``signed_curve25519`` always included.
* ``/keys/claim`` hands out one one-time key per device (oldest first) and
  deletes it; when none is left, the fallback key, which stays and is marked used.
* ``/sendToDevice`` is idempotent per (user, device, txn id); ``"*"`` means
  every device of the user; a content over 64 KiB is 413 ``M_TOO_LARGE``.
  Messages wait in the recipient device's inbox, are sent in every ``/sync``
  of that device, and are deleted when a ``/sync`` arrives whose ``since`` is
  at or past them: exactly the spec's rule, so a client that loses a token
  after using it loses the messages.
* ``device_lists.changed`` (incremental syncs only): users sharing a joined room
  with us whose devices changed (new device, new keys, deleted device) and
  users who started sharing a room with us; ``left``: users who no longer share
  any. Our own changes count too.

Not modelled: cross-signing keys, signatures checks, the 100-message limit per
``/sync`` (the fake's single stream token cannot express a partial to-device
batch), federation.
"""

from __future__ import annotations

import copy
from typing import Any

from .._content import canonical_json
from ._model import (
    FakeLogin,
    FakeUser,
    JsonDict,
    _Device,
    _Fallback,
    _HttpError,
    _Session,
    _ToDevice,
)

#: Synapse's MAX_TO_DEVICE_CONTENT_SIZE (canonical JSON of one message's content).
MAX_TO_DEVICE_CONTENT_BYTES = 65_536
_UNSTABLE_FALLBACK = "org.matrix.msc2732.fallback_keys"


def _claim(device: _Device, algorithm: str) -> tuple[str, Any] | None:
    for key_id in device.one_time_keys:
        if key_id.split(":", 1)[0] == algorithm:
            return key_id, device.one_time_keys.pop(key_id)
    fallback = device.fallback.get(algorithm)
    if fallback is None:
        return None
    fallback.used = True
    return fallback.key_id, copy.deepcopy(fallback.key)


def _per_user(body: JsonDict, field: str, value_type: type) -> dict[str, Any]:
    """``body[field]``: user id → ``value_type`` (a list of devices, a device map)."""
    wanted = body.get(field)
    if not isinstance(wanted, dict) or not all(isinstance(v, value_type) for v in wanted.values()):
        raise _HttpError(400, "M_BAD_JSON", f"{field} must map user ids to {value_type.__name__}s")
    return wanted


def _key_map(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and ":" in k for k in value):
        raise _HttpError(400, "M_BAD_JSON", f"{what} must map '<algorithm>:<key id>' to keys")
    return value


class KeyHandlers:
    """Key and to-device endpoints and their part of ``/sync`` (a FakeHomeserver mixin)."""

    # -- acting directly and inspecting ------------------------------------------------

    def send_to_device_as(
        self, sender: FakeUser | FakeLogin | str, event_type: str, messages: JsonDict
    ) -> None:
        """Deliver to-device ``messages`` (user → device or ``"*"`` → content)."""
        self._deliver_to_device(self._uid(sender), event_type, messages)

    def to_device_inbox(self, user: FakeUser | str, device_id: str) -> list[JsonDict]:
        """To-device events waiting for that device (not yet deleted by a sync)."""
        device = self._devices.get(self._uid(user), {}).get(device_id)
        return [] if device is None else [copy.deepcopy(m.event) for m in device.inbox]

    def take_to_device(self, user: FakeUser | str, device_id: str) -> list[JsonDict]:
        """Remove the to-device events waiting for that device and return them (lost
        messages, or messages a test delivers later with :meth:`send_to_device_as`)."""
        device = self._devices.get(self._uid(user), {}).get(device_id)
        if device is None:
            return []
        taken, device.inbox = device.inbox, []
        return [m.event for m in taken]

    def device_keys(self, user: FakeUser | str, device_id: str) -> JsonDict | None:
        """The device keys as last uploaded, ``None`` before any upload."""
        device = self._devices.get(self._uid(user), {}).get(device_id)
        return None if device is None or device.keys is None else copy.deepcopy(device.keys)

    def one_time_key_counts(self, user: FakeUser | str, device_id: str) -> dict[str, int]:
        return self._devices[self._uid(user)][device_id].key_counts()

    # -- internals -------------------------------------------------------------------------

    def _own_device(self, session: _Session) -> _Device:
        devices = self._devices.setdefault(session.user_id, {})
        return devices.setdefault(session.device_id, _Device(session.device_id))

    def _deliver_to_device(self, sender: str, event_type: str, messages: Any) -> None:
        if not isinstance(messages, dict):
            raise _HttpError(400, "M_MISSING_PARAM", "Missing params: ['messages']")
        for by_device in messages.values():
            if not isinstance(by_device, dict) or not all(
                isinstance(c, dict) for c in by_device.values()
            ):
                raise _HttpError(400, "M_BAD_JSON", "messages must map devices to objects")
            for content in by_device.values():
                if len(canonical_json(content)) > MAX_TO_DEVICE_CONTENT_BYTES:
                    raise _HttpError(413, "M_TOO_LARGE", "To-device message is too large")
        for user_id, by_device in messages.items():
            devices = self._devices.get(user_id, {})
            for device_id, content in by_device.items():
                targets = list(devices.values()) if device_id == "*" else [devices.get(device_id)]
                for device in targets:
                    if device is None:
                        continue  # unknown devices are dropped, as on Synapse
                    self._pos += 1
                    event = {"type": event_type, "sender": sender, "content": content}
                    device.inbox.append(_ToDevice(self._pos, copy.deepcopy(event)))
        self._notify()

    def _sync_to_device(self, session: _Session, since: int | None) -> list[JsonDict]:
        """This device's to-device events, after deleting those ``since`` acknowledges."""
        device = self._devices.get(session.user_id, {}).get(session.device_id)
        if device is None:
            return []
        if since is not None:
            device.inbox = [m for m in device.inbox if m.pos > since]
        return [copy.deepcopy(m.event) for m in device.inbox]

    def _sharing(self, user_id: str, pos: int | None = None) -> set[str]:
        """Users joined to a room ``user_id`` is joined to (now, or just after ``pos``)."""
        shared: set[str] = set()
        for room in self._rooms.values():
            members = room.members_at(pos) if pos is not None else room.current_members()
            if members.get(user_id) == "join":
                shared.update(u for u, m in members.items() if m == "join")
        return shared

    def _sync_device_lists(self, user_id: str, since: int | None) -> JsonDict:
        if since is None:
            return {"changed": [], "left": []}
        now = self._sharing(user_id)
        changed = {
            u for pos, u in self._device_changes if pos > since and (u == user_id or u in now)
        }
        candidates: set[str] = set()
        for room in self._rooms.values():
            moved = room.members_changed_after(since)
            if user_id in moved:
                candidates.update(room.members_at(since), room.current_members())
            else:
                candidates.update(moved)
        candidates.discard(user_id)
        left: set[str] = set()
        if candidates:
            before = self._sharing(user_id, since)
            changed.update(u for u in candidates if u in now and u not in before)
            left = {u for u in candidates if u in before and u not in now}
        return {"changed": sorted(changed), "left": sorted(left)}

    def _sync_keys(self, session: _Session) -> JsonDict:
        device = self._own_device(session)
        return {
            "device_one_time_keys_count": device.key_counts(),
            "device_unused_fallback_key_types": device.unused_fallback_types(),
        }

    # -- handlers ----------------------------------------------------------------------------

    async def _h_keys_upload(self, *, session: _Session, body: Any, **_: Any) -> JsonDict:
        body = self._object(body)
        device = self._own_device(session)
        device_keys = body.get("device_keys")
        if device_keys is not None:
            if not isinstance(device_keys, dict):
                raise _HttpError(400, "M_BAD_JSON", "device_keys must be an object")
            if (device_keys.get("user_id"), device_keys.get("device_id")) != (
                session.user_id,
                session.device_id,
            ):
                raise _HttpError(
                    400, "M_INVALID_PARAM", "device_keys must name the uploading user and device"
                )
        one_time = _key_map(body.get("one_time_keys"), "one_time_keys")
        fallback_raw = body.get("fallback_keys", body.get(_UNSTABLE_FALLBACK))
        fallback = _key_map(fallback_raw, "fallback_keys")
        for key_id, key in one_time.items():
            existing = device.one_time_keys.get(key_id)
            if existing is not None and existing != key:
                raise _HttpError(400, "M_UNKNOWN", f"One time key {key_id} already exists.")
        if device_keys is not None and device_keys != device.keys:
            device.keys = copy.deepcopy(device_keys)
            self._device_changed(session.user_id)
        for key_id, key in one_time.items():
            device.one_time_keys.setdefault(key_id, copy.deepcopy(key))
        for key_id, key in fallback.items():
            algorithm = key_id.split(":", 1)[0]
            current = device.fallback.get(algorithm)
            if current is None or (current.key_id, current.key) != (key_id, key):
                device.fallback[algorithm] = _Fallback(key_id, copy.deepcopy(key))
        return {"one_time_key_counts": device.key_counts()}

    async def _h_keys_query(self, *, body: Any, **_: Any) -> JsonDict:
        answer: JsonDict = {}
        for user_id, device_ids in _per_user(self._object(body), "device_keys", list).items():
            found: JsonDict = {}
            for device in self._devices.get(user_id, {}).values():
                if device.keys is None or (device_ids and device.device_id not in device_ids):
                    continue
                keys = copy.deepcopy(device.keys)
                if device.display_name is not None:
                    keys.setdefault("unsigned", {})["device_display_name"] = device.display_name
                found[device.device_id] = keys
            answer[user_id] = found
        return {"device_keys": answer, "failures": {}}

    async def _h_keys_claim(self, *, body: Any, **_: Any) -> JsonDict:
        answer: JsonDict = {}
        for user_id, by_device in _per_user(self._object(body), "one_time_keys", dict).items():
            for device_id, algorithm in by_device.items():
                device = self._devices.get(user_id, {}).get(device_id)
                claimed = None if device is None else _claim(device, str(algorithm))
                if claimed is not None:
                    answer.setdefault(user_id, {})[device_id] = dict([claimed])
        return {"one_time_keys": answer, "failures": {}}

    async def _h_send_to_device(
        self, *, session: _Session, eventType: str, txnId: str, body: Any, **_: Any
    ) -> JsonDict:
        key = (session.user_id, session.device_id, "sendToDevice:" + txnId)
        if key not in self._txns:
            self._deliver_to_device(session.user_id, eventType, self._object(body).get("messages"))
            self._txns[key] = ""
        return {}
