"""Olm to-device: payload checks, one-time-key signatures, wedged sessions."""

from __future__ import annotations

import pytest
from crypto_harness import KeyServer, Peer, RawDevice, new_peer

from matrix_client.crypto import Membership, RequestKind, WarningKind

ROOM = "!room:x"


@pytest.fixture
def mallory(server: KeyServer) -> RawDevice:
    device = RawDevice("@mallory:x", "EVIL")
    device.publish(server)
    return device


def test_a_correct_payload_is_accepted(alice: Peer, mallory: RawDevice, server: KeyServer) -> None:
    alice.machine.update_tracked_users([mallory.user_id])
    alice.pump()
    event = mallory.olm_event(server, alice, mallory.payload(alice, "m.custom", {"a": 1}))
    (decrypted,) = alice.machine.receive_sync_changes([event], now_ms=0)
    assert (decrypted.event_type, decrypted.content) == ("m.custom", {"a": 1})
    assert decrypted.sender_device_id == "EVIL"
    assert decrypted.sender_ed25519 == mallory.ed25519


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("sender", "@alice:x", "payload sender is not the to-device sender"),
        ("recipient", "@someone:x", "payload recipient is not us"),
        ("recipient_keys", {"ed25519": "AAAA"}, "payload recipient_keys is not our key"),
        ("keys", {}, "payload keys.ed25519 missing"),
        ("sender_device", "OTHER", "payload sender_device is not the device of the sender key"),
        ("content", "text", "payload is not an event"),
    ],
)
def test_payload_check_failures_drop_the_event(
    alice: Peer, mallory: RawDevice, server: KeyServer, field: str, value: object, reason: str
) -> None:
    alice.machine.update_tracked_users([mallory.user_id])
    alice.pump()
    payload = mallory.payload(alice, "m.room_key", {"algorithm": "m.megolm.v1.aes-sha2"})
    payload[field] = value
    event = mallory.olm_event(server, alice, payload)
    assert alice.machine.receive_sync_changes([event], now_ms=0) == []
    (warning,) = alice.machine.drain_warnings()
    assert (warning.kind, warning.reason) == (WarningKind.OLM_PAYLOAD_MISMATCH, reason)


def test_a_claimed_signing_key_that_is_not_the_pinned_one_is_refused(
    alice: Peer, mallory: RawDevice, server: KeyServer
) -> None:
    alice.machine.update_tracked_users([mallory.user_id])
    alice.pump()
    other = RawDevice("@mallory:x", "EVIL")
    payload = mallory.payload(alice, "m.custom", {})
    payload["keys"] = {"ed25519": other.ed25519}
    event = mallory.olm_event(server, alice, payload)
    assert alice.machine.receive_sync_changes([event], now_ms=0) == []
    (warning,) = alice.machine.drain_warnings()
    assert warning.reason == "payload keys.ed25519 is not the sender device's key"


def test_a_message_for_another_device_or_garbage_is_dropped(
    alice: Peer, mallory: RawDevice, server: KeyServer
) -> None:
    event = mallory.olm_event(server, alice, mallory.payload(alice, "m.custom", {}))
    curve = alice.machine.identity_keys.curve25519
    not_ours = {**event, "content": {**event["content"], "ciphertext": {"other": {}}}}
    garbage = {
        **event,
        "content": {**event["content"], "ciphertext": {curve: {"type": 0, "body": "!!"}}},
    }
    no_sender = {"type": "m.room.encrypted", "content": {}}
    assert alice.machine.receive_sync_changes([not_ours, garbage, no_sender], now_ms=0) == []
    kinds = [w.kind for w in alice.machine.drain_warnings()]
    assert kinds == [
        WarningKind.TO_DEVICE_MALFORMED,
        WarningKind.OLM_DECRYPT_FAILED,
        WarningKind.TO_DEVICE_MALFORMED,
    ]


def test_the_same_prekey_message_twice_does_not_create_two_sessions(
    alice: Peer, mallory: RawDevice, server: KeyServer
) -> None:
    event = mallory.olm_event(server, alice, mallory.payload(alice, "m.custom", {"n": 1}))
    second = mallory.olm_event(server, alice, mallory.payload(alice, "m.custom", {"n": 2}))
    out = alice.machine.receive_sync_changes([event, second], now_ms=0)
    assert [e.content for e in out] == [{"n": 1}, {"n": 2}]
    changes = alice.machine.take_changes()
    assert len(changes.olm_sessions) == 1


def test_a_one_time_key_with_a_bad_signature_gives_no_session(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    for key in server.otks[bob.user_id, bob.device_id].values():
        key["key"] = RawDevice("@x:x", "X").curve25519  # signature no longer matches
    server.fallback.pop((bob.user_id, bob.device_id))
    members = {alice.user_id: Membership.JOIN, bob.user_id: Membership.JOIN}
    sent = alice.share(ROOM, members)
    assert [r.kind for r in sent] == [RequestKind.KEYS_QUERY, RequestKind.KEYS_CLAIM]
    (warning,) = alice.machine.drain_warnings()
    assert warning.kind is WarningKind.ONE_TIME_KEY_INVALID
    # The device is left alone for an hour instead of being claimed in a loop...
    assert alice.share(ROOM, members, now_ms=1_000) == []
    # ... and retried after.
    again = alice.share(ROOM, members, now_ms=3_600_000)
    assert [r.kind for r in again] == [RequestKind.KEYS_CLAIM]


def test_the_fallback_key_serves_when_otks_ran_out(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    server.otks[bob.user_id, bob.device_id].clear()
    alice.share(ROOM, {alice.user_id: Membership.JOIN, bob.user_id: Membership.JOIN})
    assert (bob.user_id, bob.device_id) in server.fallback_used
    (room_key,) = bob.sync()
    assert room_key.event_type == "m.room_key"
    bob.pump()  # bob replaces the used fallback key
    assert (bob.user_id, bob.device_id) not in server.fallback_used


def test_a_wedged_session_is_replaced_and_a_dummy_sent(server: KeyServer) -> None:
    alice = new_peer(server, "@alice:x", "ALICE1")
    bob = new_peer(server, "@bob:x", "BOB1")
    members = {alice.user_id: Membership.JOIN, bob.user_id: Membership.JOIN}
    alice.share(ROOM, members)
    bob.sync()
    bob.machine.update_tracked_users([alice.user_id])
    bob.pump()
    bob.share(ROOM, members)  # bob replies on the session alice started (type 1 now)
    # Alice loses her Olm session with bob (restored from an old backup, say).
    alice.store._olm.clear()  # type: ignore[attr-defined]
    alice.reload()
    alice.machine.update_tracked_users([bob.user_id])
    assert alice.sync() == []
    assert [w.kind for w in alice.machine.drain_warnings()] == [WarningKind.OLM_DECRYPT_FAILED]
    alice.pump(now_ms=10)  # claim for bob, new session, m.dummy over it
    kinds = [k for u, k, _ in server.log if u == alice.user_id][-2:]
    assert kinds == [RequestKind.KEYS_CLAIM, RequestKind.TO_DEVICE]
    (dummy,) = bob.sync()
    assert dummy.event_type == "m.dummy"
    # Bob's next key comes over the new session; no second claim follows.
    bob.machine.invalidate_room_session(ROOM)
    bob.share(ROOM, members)
    assert [e.event_type for e in alice.sync()] == ["m.room_key"]
    alice.pump(now_ms=20)
    assert [k for u, k, _ in server.log if u == alice.user_id][-1] is RequestKind.TO_DEVICE
