"""Missing keys: room key requests out, the answer policy in, late decryption."""

from __future__ import annotations

import json

import pytest
import vodozemac
from crypto_harness import KeyServer, Peer, RawDevice, new_peer, room_event

from matrix_client.crypto import (
    MissingSessionError,
    RequestKind,
    RoomMismatchError,
    SenderTrust,
    WarningKind,
)

ROOM = "!room:x"


def lost_key_event(alice: Peer, bob: Peer, server: KeyServer) -> dict:
    """Alice shares a key with bob that the server loses, then sends an event."""
    server.drop_types.add("m.room.encrypted")
    alice.share(ROOM, _members(alice, bob))
    server.drop_types.clear()
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "late"}, 0)
    return room_event(content, alice.user_id, "$late")


def _members(*peers: Peer) -> dict:
    from matrix_client.crypto import Membership

    return {p.user_id: Membership.JOIN for p in peers}


def test_missing_key_request_forward_and_late_decrypt(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    event = lost_key_event(alice, bob, server)
    bob.machine.update_tracked_users([alice.user_id])
    bob.pump()
    with pytest.raises(MissingSessionError) as caught:
        bob.machine.decrypt_room_event(ROOM, event)
    missing = caught.value
    assert (missing.sender, missing.device_id) == (alice.user_id, alice.device_id)
    request = bob.machine.request_room_key(
        missing.room_id,
        missing.session_id,
        sender=missing.sender,
        sender_key=missing.sender_key,
        sender_device_id=missing.device_id,
    )
    assert request is not None
    assert request.kind is RequestKind.TO_DEVICE
    assert request.event_type == "m.room_key_request"
    assert set(request.body["messages"]) == {alice.user_id, bob.user_id}
    assert bob.machine.request_room_key(ROOM, missing.session_id, sender=alice.user_id) is None
    bob.pump()

    alice.sync()  # alice answers: bob's device got this session from her before
    alice.pump()
    received = bob.sync()
    assert [e.event_type for e in received] == ["m.forwarded_room_key"], received
    assert bob.machine.has_room_key(ROOM, missing.session_id)
    decrypted = bob.machine.decrypt_room_event(ROOM, event)
    assert decrypted.content == {"body": "late"}
    assert decrypted.trust is SenderTrust.PINNED_DEVICE  # re-sent by its creator
    (cancel,) = [r for r in bob.machine.outgoing_requests() if r.kind is RequestKind.TO_DEVICE]
    assert cancel.body["messages"][alice.user_id]["ALICE1"]["action"] == "request_cancellation"


def test_a_key_that_arrives_before_the_request_went_out_cancels_nothing(
    alice: Peer, bob: Peer
) -> None:
    alice.share(ROOM, _members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    event = room_event(content, alice.user_id, "$1")
    with pytest.raises(MissingSessionError) as caught:
        bob.machine.decrypt_room_event(ROOM, event)  # the to-device is not synced yet
    bob.machine.request_room_key(ROOM, caught.value.session_id, sender=alice.user_id)
    bob.sync()  # the key arrives
    assert [r.kind for r in bob.machine.outgoing_requests()] == [RequestKind.KEYS_UPLOAD]
    assert bob.machine.decrypt_room_event(ROOM, event).content == {"body": "x"}


def test_requests_from_devices_that_never_had_the_session_are_ignored(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    carol = new_peer(server, "@carol:x", "CAROL1")
    alice.machine.update_tracked_users([carol.user_id])
    event = lost_key_event(alice, bob, server)
    carol.machine.request_room_key(ROOM, event["content"]["session_id"], sender=alice.user_id)
    carol.pump()
    alice.sync()
    (warning,) = alice.machine.drain_warnings()
    assert (warning.kind, warning.user_id) == (WarningKind.KEY_REQUEST_IGNORED, carol.user_id)
    alice.pump()
    assert carol.sync() == []


def test_an_unrequested_forwarded_key_is_rejected(alice: Peer, server: KeyServer) -> None:
    mallory = RawDevice("@mallory:x", "EVIL")
    mallory.publish(server)
    session = vodozemac.GroupSession()
    exported = vodozemac.InboundGroupSession(session.session_key).export_at(0)
    forwarded = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": ROOM,
        "sender_key": RawDevice("@bob:x", "B").curve25519,
        "session_id": session.session_id,
        "session_key": exported.to_base64(),
        "sender_claimed_ed25519_key": mallory.ed25519,
        "forwarding_curve25519_key_chain": [],
    }
    payload = mallory.payload(alice, "m.forwarded_room_key", forwarded)
    alice.machine.receive_sync_changes([mallory.olm_event(server, alice, payload)], now_ms=0)
    assert not alice.machine.has_room_key(ROOM, session.session_id)
    (warning,) = alice.machine.drain_warnings()
    assert warning.reason == "we did not ask for it"
    # Asked for, but from a device that is neither the creator nor ours: still refused.
    alice.machine.request_room_key(ROOM, session.session_id, sender="@bob:x")
    alice.machine.receive_sync_changes([mallory.olm_event(server, alice, payload)], now_ms=0)
    assert not alice.machine.has_room_key(ROOM, session.session_id)
    assert alice.machine.drain_warnings()[0].reason == "not from a trusted device"


def test_a_session_whose_plaintext_names_another_room_is_refused(
    alice: Peer, server: KeyServer
) -> None:
    mallory = RawDevice("@mallory:x", "EVIL")
    mallory.publish(server)
    session = vodozemac.GroupSession()
    room_key = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": ROOM,
        "session_id": session.session_id,
        "session_key": session.session_key.to_base64(),
    }
    payload = mallory.payload(alice, "m.room_key", room_key)
    alice.machine.receive_sync_changes([mallory.olm_event(server, alice, payload)], now_ms=0)
    plaintext = {"type": "m.room.message", "content": {"body": "x"}, "room_id": "!other:x"}
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": mallory.curve25519,
        "session_id": session.session_id,
        "device_id": "EVIL",
        "ciphertext": session.encrypt(json.dumps(plaintext).encode()).to_base64(),
    }
    with pytest.raises(RoomMismatchError):
        alice.machine.decrypt_room_event(ROOM, room_event(content, mallory.user_id, "$x"))


def test_at_most_so_many_key_requests_stay_open(alice: Peer) -> None:
    from matrix_client.crypto._key_requests import MAX_ACTIVE_KEY_REQUESTS

    for n in range(MAX_ACTIVE_KEY_REQUESTS + 5):
        alice.machine.request_room_key(ROOM, f"session{n}", sender="@bob:x")
    pending = [r for r in alice.machine.outgoing_requests() if r.kind is RequestKind.TO_DEVICE]
    assert len(pending) == MAX_ACTIVE_KEY_REQUESTS
