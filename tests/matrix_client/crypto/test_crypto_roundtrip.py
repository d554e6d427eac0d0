"""Two machines: key upload, query, claim, Olm session, room key, Megolm both ways."""

from __future__ import annotations

import pytest
from crypto_harness import KeyServer, Peer, room_event

from matrix_client.crypto import (
    BadCiphertextError,
    HistoryVisibility,
    Membership,
    ReplayError,
    RequestKind,
    RoomKeyNotSharedError,
    SenderMismatchError,
    SenderTrust,
)

ROOM = "!room:x"


def members(*peers: Peer) -> dict[str, Membership]:
    return {p.user_id: Membership.JOIN for p in peers}


def test_share_encrypt_decrypt_both_ways(alice: Peer, bob: Peer, server: KeyServer) -> None:
    sent = alice.share(ROOM, members(alice, bob))
    assert [r.kind for r in sent] == [
        RequestKind.KEYS_QUERY,
        RequestKind.KEYS_CLAIM,
        RequestKind.TO_DEVICE,
    ]
    assert sent[2].event_type == "m.room.encrypted"
    assert (
        alice.machine.share_room_key(ROOM, members(alice, bob), HistoryVisibility.SHARED, 0) == []
    )
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "hi"}, 0)
    assert set(content) == {"algorithm", "sender_key", "ciphertext", "session_id", "device_id"}
    assert "m.room.message" not in str(content)

    received = bob.sync()
    assert [e.event_type for e in received] == ["m.room_key"]
    assert received[0].sender == alice.user_id

    bob.machine.update_tracked_users([alice.user_id])
    bob.pump()  # bob learns alice's device: the session is attributed to it
    event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1"))
    assert (event.event_type, event.content) == ("m.room.message", {"body": "hi"})
    assert event.sender_device_id == alice.device_id
    assert event.trust is SenderTrust.PINNED_DEVICE
    assert event.message_index == 0

    # Bob answers: his own session, shared over the Olm session alice started.
    bob.share(ROOM, members(alice, bob))
    reply = bob.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "yo"}, 0)
    alice.sync()
    decrypted = alice.machine.decrypt_room_event(ROOM, room_event(reply, bob.user_id, "$2"))
    assert decrypted.content == {"body": "yo"}
    # Bob reused the Olm session alice created (no second claim of alice's keys).
    claims = [b for u, k, b in server.log if u == bob.user_id and k is RequestKind.KEYS_CLAIM]
    assert claims == []


def test_own_events_decrypt_and_unknown_sender_device(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    own = alice.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1"))
    assert own.content == {"body": "x"}
    assert own.trust is SenderTrust.PINNED_DEVICE
    assert own.sender_device_id == alice.device_id
    bob.sync()  # bob never queried alice's devices
    event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1"))
    assert event.trust is SenderTrust.UNKNOWN_DEVICE
    assert event.sender_device_id is None


def test_relates_to_stays_in_clear_and_comes_back(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    relates = {"rel_type": "m.replace", "event_id": "$orig"}
    content = alice.machine.encrypt_room_event(
        ROOM,
        "m.room.message",
        {"body": "* edit", "m.new_content": {"body": "edit"}, "m.relates_to": relates},
        0,
    )
    assert content["m.relates_to"] == relates
    bob.sync()
    event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$e"))
    assert event.content["m.relates_to"] == relates
    assert event.content["m.new_content"] == {"body": "edit"}


def test_relates_to_is_not_in_the_plaintext(alice: Peer, bob: Peer) -> None:
    """The server could rewrite the clear relation; the ciphertext must not carry a second
    one that could disagree, so the decrypted content takes the clear one."""
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(
        ROOM, "m.room.message", {"body": "t", "m.relates_to": {"rel_type": "m.thread"}}, 0
    )
    del content["m.relates_to"]
    bob.sync()
    event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$t"))
    assert "m.relates_to" not in event.content


def test_replay_is_rejected_and_the_same_event_decrypts_again(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "pay 5"}, 0)
    bob.sync()
    bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1", ts=10))
    again = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1", ts=10))
    assert again.content == {"body": "pay 5"}
    with pytest.raises(ReplayError):
        bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$2", ts=10))
    bob.save()
    bob.reload()  # the replay record is durable
    with pytest.raises(ReplayError):
        bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$2", ts=11))


def test_event_from_another_sender_with_alices_session_is_refused(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    bob.sync()
    with pytest.raises(SenderMismatchError):
        bob.machine.decrypt_room_event(ROOM, room_event(content, "@mallory:x", "$1"))


def test_bad_ciphertext(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    bob.sync()
    tampered = dict(content, ciphertext=content["ciphertext"][:-8] + "AAAAAAAA")
    with pytest.raises(BadCiphertextError):
        bob.machine.decrypt_room_event(ROOM, room_event(tampered, alice.user_id, "$1"))
    with pytest.raises(BadCiphertextError):
        bob.machine.decrypt_room_event(
            ROOM, room_event(dict(content, ciphertext="!"), "@alice:x", "$2")
        )


def test_encrypt_before_share_is_refused(alice: Peer) -> None:
    with pytest.raises(RoomKeyNotSharedError):
        alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)


def test_room_keys_are_handed_out_without_the_key(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, members(alice, bob))
    (room_key,) = bob.sync()
    assert room_key.content["room_id"] == ROOM
    assert "session_key" not in room_key.content
    assert bob.machine.has_room_key(ROOM, room_key.content["session_id"])


def test_a_refused_room_key_is_not_handed_out(alice: Peer, server: KeyServer) -> None:
    from crypto_harness import RawDevice

    mallory = RawDevice("@mallory:x", "EVIL")
    bad = {"algorithm": "m.megolm.v1.aes-sha2", "room_id": ROOM, "session_id": "x"}
    event = mallory.olm_event(server, alice, mallory.payload(alice, "m.room_key", bad))
    assert alice.machine.receive_sync_changes([event, "junk"], now_ms=0) == []  # type: ignore[list-item]
    assert [w.reason for w in alice.machine.drain_warnings()] == [
        "malformed m.room_key",
        "to-device event is not an object",
    ]
