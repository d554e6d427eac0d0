"""Who gets the room key, and when the room gets a new session."""

from __future__ import annotations

import pytest
from crypto_harness import KeyServer, Peer, new_peer, room_event

from matrix_client.crypto import (
    EncryptionSettings,
    HistoryVisibility,
    Membership,
    MissingSessionError,
    RoomKeyNotSharedError,
)

ROOM = "!room:x"
J, INV = Membership.JOIN, Membership.INVITE


@pytest.fixture
def carol(server: KeyServer) -> Peer:
    return new_peer(server, "@carol:x", "CAROL1")


def send(peer: Peer, body: str, now_ms: int = 0) -> dict:
    return peer.machine.encrypt_room_event(ROOM, "m.room.message", {"body": body}, now_ms)


def room_keys(peer: Peer) -> list[str]:
    """The session ids of the room keys that reached ``peer``."""
    return [e.content["session_id"] for e in peer.sync() if e.event_type == "m.room_key"]


def test_rotation_after_rotation_period_msgs(alice: Peer, bob: Peer) -> None:
    settings = EncryptionSettings(rotation_period_msgs=3)
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members, settings=settings)
    first = [send(alice, str(n)) for n in range(3)]
    with pytest.raises(RoomKeyNotSharedError):
        send(alice, "4")
    alice.share(ROOM, members, settings=settings)
    fourth = send(alice, "4")
    assert fourth["session_id"] != first[0]["session_id"]
    assert len(set(room_keys(bob))) == 2
    for n, content in enumerate([*first, fourth]):
        event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, f"${n}"))
        assert event.content["body"] == str(n + 1 if n == 3 else n)


def test_rotation_after_rotation_period_ms(alice: Peer, bob: Peer) -> None:
    settings = EncryptionSettings(rotation_period_ms=1_000)
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members, now_ms=0, settings=settings)
    early = send(alice, "a", now_ms=999)
    with pytest.raises(RoomKeyNotSharedError):
        send(alice, "b", now_ms=1_000)
    alice.share(ROOM, members, now_ms=1_000, settings=settings)
    assert send(alice, "b", now_ms=1_000)["session_id"] != early["session_id"]


def test_default_settings_rotate_after_100_messages_or_a_week(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members)
    first = send(alice, "0")["session_id"]
    for n in range(99):
        send(alice, str(n))
    with pytest.raises(RoomKeyNotSharedError):
        send(alice, "100")
    alice.share(ROOM, members, now_ms=1)
    second = send(alice, "x", now_ms=1)["session_id"]
    assert second != first
    week = 7 * 24 * 3600 * 1000
    alice.share(ROOM, members, now_ms=week + 1)
    assert send(alice, "y", now_ms=week + 1)["session_id"] != second


def test_a_member_who_left_never_gets_the_next_session(alice: Peer, bob: Peer, carol: Peer) -> None:
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J, carol.user_id: J})
    before = send(alice, "all three")["session_id"]
    assert room_keys(carol) == [before]
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J})  # carol left
    after = send(alice, "without carol")["session_id"]
    assert after != before
    assert room_keys(carol) == []
    assert room_keys(bob) == [before, after]


def test_a_new_member_gets_the_running_session_from_now_on(
    alice: Peer, bob: Peer, carol: Peer
) -> None:
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J})
    old = send(alice, "before carol")
    assert room_keys(bob) == [old["session_id"]]
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J, carol.user_id: J})
    new = send(alice, "after carol")
    assert new["session_id"] == old["session_id"]  # no rotation with `shared` visibility
    room_keys(carol)
    assert bob.sync() == []  # bob was not sent the key again
    event = carol.machine.decrypt_room_event(ROOM, room_event(new, alice.user_id, "$new"))
    assert event.content["body"] == "after carol"
    with pytest.raises(MissingSessionError) as caught:
        carol.machine.decrypt_room_event(ROOM, room_event(old, alice.user_id, "$old"))
    assert caught.value.first_known_index == 1


def test_with_joined_visibility_a_new_member_means_a_new_session(
    alice: Peer, bob: Peer, carol: Peer
) -> None:
    vis = HistoryVisibility.JOINED
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J}, vis)
    old = send(alice, "before")["session_id"]
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J, carol.user_id: J}, vis)
    new = send(alice, "after")["session_id"]
    assert new != old
    assert room_keys(carol) == [new]


@pytest.mark.parametrize(
    ("visibility", "invited_gets_key"),
    [
        (HistoryVisibility.SHARED, True),
        (HistoryVisibility.INVITED, True),
        (HistoryVisibility.WORLD_READABLE, True),
        (HistoryVisibility.JOINED, False),
    ],
)
def test_invited_members_get_the_key_as_history_visibility_allows(
    alice: Peer, bob: Peer, visibility: HistoryVisibility, invited_gets_key: bool
) -> None:
    alice.share(ROOM, {alice.user_id: J, bob.user_id: INV}, visibility)
    session_id = send(alice, "welcome")["session_id"]
    assert room_keys(bob) == ([session_id] if invited_gets_key else [])


def test_a_device_of_a_user_not_in_the_room_never_gets_keys(
    alice: Peer, bob: Peer, carol: Peer, server: KeyServer
) -> None:
    alice.machine.update_tracked_users([carol.user_id])  # known, tracked, shares another room
    alice.pump()
    alice.share(ROOM, {alice.user_id: J, bob.user_id: J})
    send(alice, "private")
    assert room_keys(carol) == []
    claimed = [b for u, k, b in server.log if u == alice.user_id and k.value == "keys_claim"]
    assert all(carol.user_id not in b["one_time_keys"] for b in claimed)


def test_a_new_device_of_a_member_gets_the_running_session(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members)
    old = send(alice, "1")["session_id"]
    bob2 = new_peer(server, bob.user_id, "BOB2")
    alice.sync(changed=[bob.user_id])
    alice.share(ROOM, members)
    assert send(alice, "2")["session_id"] == old
    assert room_keys(bob2) == [old]


def test_a_deleted_device_means_a_new_session(alice: Peer, bob: Peer, server: KeyServer) -> None:
    bob2 = new_peer(server, bob.user_id, "BOB2")
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members)
    old = send(alice, "1")["session_id"]
    del server.device_keys[bob.user_id]["BOB2"]
    alice.sync(changed=[bob.user_id])
    alice.share(ROOM, members)
    new = send(alice, "2")["session_id"]
    assert new != old
    assert room_keys(bob2) == [old]
    assert room_keys(bob) == [old, new]


def test_a_history_visibility_change_means_a_new_session(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members, HistoryVisibility.SHARED)
    old = send(alice, "1")["session_id"]
    alice.share(ROOM, members, HistoryVisibility.JOINED)
    assert send(alice, "2")["session_id"] != old


def test_invalidate_forces_a_new_session(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    alice.share(ROOM, members)
    old = send(alice, "1")["session_id"]
    alice.machine.invalidate_room_session(ROOM)
    with pytest.raises(RoomKeyNotSharedError):
        send(alice, "2")
    alice.share(ROOM, members)
    assert send(alice, "2")["session_id"] != old


def test_share_waits_for_the_to_device_confirmation(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    for _ in range(2):
        for request in alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0):
            alice.send(request)
    first = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    again = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    assert first == again  # the same to-device request until it is marked sent
    alice.send(first[0])
    assert alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0) == []


def test_settings_from_room_encryption_content() -> None:
    assert EncryptionSettings.from_content({}) == EncryptionSettings(604_800_000, 100)
    odd = EncryptionSettings.from_content({"rotation_period_ms": -1, "rotation_period_msgs": True})
    assert odd == EncryptionSettings()
    assert EncryptionSettings.from_content({"rotation_period_msgs": 5}).rotation_period_msgs == 5
    assert HistoryVisibility.parse("nonsense") is HistoryVisibility.SHARED


def test_a_refused_claim_is_not_retried_in_a_loop(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    (query,) = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    alice.send(query)
    (claim,) = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    alice.machine.mark_request_failed(claim.request_id, now_ms=0)
    assert claim not in alice.machine.outgoing_requests()
    assert alice.share(ROOM, members, now_ms=1) == []  # bob's device is skipped for now
    assert room_keys(bob) == []
    assert alice.share(ROOM, members, now_ms=3_600_000)[0].kind.value == "keys_claim"
    assert len(room_keys(bob)) == 1


def test_a_refused_key_send_is_offered_again(alice: Peer, bob: Peer) -> None:
    members = {alice.user_id: J, bob.user_id: J}
    for _ in range(2):
        for request in alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0):
            alice.send(request)
    (to_device,) = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    alice.machine.mark_request_failed(to_device.request_id, now_ms=0)
    (again,) = alice.machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    assert again.request_id != to_device.request_id
    alice.send(again)
    session_id = send(alice, "x")["session_id"]
    assert room_keys(bob) == [session_id]


def test_plain_strings_work_for_membership_and_visibility(alice: Peer, bob: Peer) -> None:
    alice.share(ROOM, {alice.user_id: "join", bob.user_id: "invite"}, "shared")  # type: ignore[arg-type, dict-item]
    assert room_keys(bob) == [send(alice, "x")["session_id"]]


def test_many_devices_are_split_over_several_to_device_requests(
    alice: Peer, server: KeyServer
) -> None:
    from crypto_harness import RawDevice

    for n in range(130):
        RawDevice("@many:x", f"D{n}").publish(server, one_time_keys=1)
    sent = alice.share(ROOM, {alice.user_id: J, "@many:x": J})
    to_device = [r for r in sent if r.kind.value == "to_device"]
    sizes = sorted(len(r.body["messages"]["@many:x"]) for r in to_device)
    assert sizes == [30, 100]
    assert alice.machine.share_room_key(ROOM, {alice.user_id: J, "@many:x": J}, "shared", 0) == []  # type: ignore[arg-type]
