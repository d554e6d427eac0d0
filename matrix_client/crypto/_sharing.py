"""Sharing our room key: who gets it, when a room gets a new session, the three stages.

Recipients are the devices of the room's joined members, plus invited members' when the
history visibility lets them read from their invite (``shared``, ``invited``,
``world_readable``), minus our own device and any device that is deleted or whose keys
changed from the pin. Nobody who is not a member gets a key: the caller's member list is
the only source of users.

A new session (rotation) is started when: there is none; it is past the room's
``rotation_period_ms`` / ``rotation_period_msgs``; the history visibility or the rotation
settings changed; a device that had it is no longer a recipient (a member left, a device
was deleted, keys changed); or a new recipient appeared and the visibility is ``joined``
(a newcomer would otherwise get the running session). Otherwise newcomers get the
running session from its current index, which cannot decrypt anything sent before.

``share_room_key`` returns one stage at a time, so the caller loops until it returns
nothing: a device-list query first (members whose devices are unknown or changed), then
a one-time-key claim (devices without an Olm session), then the to-device messages with
the key. Each stage's requests are also in ``outgoing_requests``.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import _megolm
from ._devices import Device
from ._olm import encrypt_for_device
from ._requests import Purpose, add_to_device, find, to_outgoing
from ._sessions import OutboundSession, device_key
from ._state import State
from ._store import PendingRequestRecord
from ._tracking import add_claim, claim_candidates, ensure_query, track
from ._types import (
    MEGOLM_ALGORITHM,
    EncryptionSettings,
    HistoryVisibility,
    Membership,
    OutgoingRequest,
)


def recipients(
    state: State, members: Mapping[str, Membership], visibility: HistoryVisibility
) -> dict[str, Device]:
    own = state.account
    out = {}
    for user_id, membership in members.items():
        if membership is Membership.INVITE and not visibility.invited_members_get_keys:
            continue
        for device in state.devices(user_id).values():
            if user_id == own.user_id and device.device_id == own.device_id:
                continue
            if device.usable:
                out[device_key(user_id, device.device_id)] = device
    return out


def _must_rotate(
    outbound: OutboundSession,
    targets: dict[str, Device],
    visibility: HistoryVisibility,
    settings: EncryptionSettings,
    now_ms: int,
) -> bool:
    if outbound.expired(now_ms):
        return True
    if outbound.history_visibility is not visibility or outbound.settings != settings:
        return True
    for key, entry in (*outbound.shared.items(), *outbound.pending.items()):
        device = targets.get(key)
        if device is None or device.curve25519 != entry[0]:
            return True  # it left, was deleted, or is not the device that got the key
    newcomers = targets.keys() - outbound.shared.keys() - outbound.pending.keys()
    return bool(newcomers) and not visibility.newcomers_get_current_session


def share_room_key(
    state: State,
    room_id: str,
    members: Mapping[str, Membership],
    visibility: HistoryVisibility,
    settings: EncryptionSettings,
    now_ms: int,
) -> list[OutgoingRequest]:
    eligible = [
        u for u, m in members.items() if m is Membership.JOIN or visibility.invited_members_get_keys
    ]
    track(state, eligible)
    if any(state.tracked.get(u) for u in eligible):
        query = ensure_query(state)
        pending_queries = [to_outgoing(r) for r in find(state, Purpose.QUERY)]
        return pending_queries or ([query] if query else [])

    targets = recipients(state, members, visibility)
    outbound = state.outbound(room_id)
    if outbound is not None and _must_rotate(outbound, targets, visibility, settings, now_ms):
        for stale in find(state, Purpose.ROOM_KEY, session_id=outbound.session_id):
            state.remove_request(stale.request_id)  # an old key nobody needs any more
        state.outbound_removed(room_id)
        outbound = None

    done = set() if outbound is None else outbound.shared.keys() | outbound.pending.keys()
    need = [d for k, d in targets.items() if k not in done]
    claims = find(state, Purpose.CLAIM_FOR_SHARE)
    if claims:
        return [to_outgoing(r) for r in claims]
    missing = claim_candidates(state, need, now_ms)
    if missing:
        return [add_claim(state, missing, Purpose.CLAIM_FOR_SHARE, now_ms)]

    if outbound is None:
        outbound = _megolm.new_outbound(state, room_id, settings, visibility, now_ms)
    ready = [d for d in need if state.olm_sessions(d.curve25519)]
    if ready:
        _send_key(state, outbound, ready, now_ms)
    return [to_outgoing(r) for r in find(state, Purpose.ROOM_KEY, room_id=room_id)]


def _send_key(state: State, outbound: OutboundSession, devices: list[Device], now_ms: int) -> None:
    index = outbound.session.message_index
    room_key = {
        "algorithm": MEGOLM_ALGORITHM,
        "room_id": outbound.room_id,
        "session_id": outbound.session_id,
        "session_key": outbound.session.session_key.to_base64(),
    }
    messages: dict[str, dict[str, dict[str, object]]] = {}
    for device in devices:
        content = encrypt_for_device(state, device, "m.room_key", room_key, now_ms)
        messages.setdefault(device.user_id, {})[device.device_id] = content
    requests = add_to_device(
        state,
        "m.room.encrypted",
        messages,
        Purpose.ROOM_KEY,
        room_id=outbound.room_id,
        session_id=outbound.session_id,
    )
    for request in requests:
        for user_id, by_device in request.body["messages"].items():
            for device_id in by_device:
                device = state.devices(user_id)[device_id]
                outbound.pending[device_key(user_id, device_id)] = [
                    device.curve25519,
                    index,
                    request.request_id,
                ]
    state.outbound_changed(outbound)


def room_key_sent(state: State, record: PendingRequestRecord) -> None:
    """The to-device with the key went out: those devices now have the session."""
    room_id, session_id = record.data["room_id"], record.data["session_id"]
    outbound = state.outbound(room_id)
    inbound = state.inbound(room_id, session_id)
    if outbound is None or outbound.session_id != session_id:
        return  # rotated meanwhile: the old session is gone anyway
    for key, entry in list(outbound.pending.items()):
        if entry[2] == record.request_id:
            del outbound.pending[key]
            outbound.shared[key] = entry[:2]
            if inbound is not None:
                inbound.shared_with[key] = entry[:2]
    state.outbound_changed(outbound)
    if inbound is not None:
        state.inbound_changed(inbound)


def room_key_failed(state: State, record: PendingRequestRecord) -> None:
    """The to-device with the key was refused: offer it again on the next share."""
    outbound = state.outbound(record.data["room_id"])
    if outbound is None or outbound.session_id != record.data["session_id"]:
        return
    for key, entry in list(outbound.pending.items()):
        if entry[2] == record.request_id:
            del outbound.pending[key]
    state.outbound_changed(outbound)
