"""Device tracking: /keys/query, self-signatures, trust on first use, deleted devices."""

from __future__ import annotations

import copy

from crypto_harness import KeyServer, Peer, RawDevice, new_peer

from matrix_client.crypto import HistoryVisibility, Membership, RequestKind, WarningKind

ROOM = "!room:x"


def queries(server: KeyServer, user_id: str) -> list[dict]:
    return [b for u, k, b in server.log if u == user_id and k is RequestKind.KEYS_QUERY]


def forged_device(user_id: str, device_id: str) -> dict:
    """Correctly self-signed device keys of a fresh account."""
    return RawDevice(user_id, device_id).device_keys()


def test_query_pins_devices_and_a_key_change_is_refused_and_warned(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    alice.machine.update_tracked_users([bob.user_id])
    alice.pump()
    assert alice.machine.known_devices(bob.user_id) == ["BOB1"]
    assert queries(server, alice.user_id) == [{"device_keys": {"@bob:x": []}}]
    alice.pump()
    assert len(queries(server, alice.user_id)) == 1  # up to date: no second query

    # The server now lists other keys for BOB1 (a swap, or a malicious server).
    server.device_keys[bob.user_id]["BOB1"] = forged_device(bob.user_id, "BOB1")
    alice.sync(changed=[bob.user_id])
    alice.pump()
    assert len(queries(server, alice.user_id)) == 2
    (warning,) = alice.machine.drain_warnings()
    assert warning.kind is WarningKind.DEVICE_KEYS_CHANGED
    assert (warning.user_id, warning.device_id) == (bob.user_id, "BOB1")
    assert alice.machine.device_keys_changed(bob.user_id, "BOB1")
    assert alice.machine.known_devices(bob.user_id) == []
    # ... and it gets no room key.
    sent = alice.share(ROOM, {alice.user_id: Membership.JOIN, bob.user_id: Membership.JOIN})
    assert [r.kind for r in sent] == [RequestKind.KEYS_QUERY]  # of alice's own devices
    alice.reload()  # the refusal is durable
    assert alice.machine.device_keys_changed(bob.user_id, "BOB1")


def test_invalid_device_keys_are_refused(alice: Peer, server: KeyServer) -> None:
    good = forged_device("@carol:x", "GOOD")
    wrong_signer = forged_device("@carol:x", "BADSIG")
    wrong_signer["signatures"] = forged_device("@carol:x", "BADSIG")["signatures"]
    listed_elsewhere = forged_device("@carol:x", "REAL")
    tampered = copy.deepcopy(good)
    tampered["device_id"] = "TAMPERED"
    missing_key = forged_device("@carol:x", "NOKEY")
    del missing_key["keys"]["curve25519:NOKEY"]
    server.device_keys["@carol:x"] = {
        "GOOD": good,
        "BADSIG": wrong_signer,
        "OTHER": listed_elsewhere,  # says it is REAL
        "TAMPERED": tampered,
        "NOKEY": missing_key,
        "JUNK": "not an object",  # type: ignore[dict-item]
    }
    alice.machine.update_tracked_users(["@carol:x"])
    alice.pump()
    assert alice.machine.known_devices("@carol:x") == ["GOOD"]
    warned = {(w.kind, w.device_id) for w in alice.machine.drain_warnings()}
    assert warned == {
        (WarningKind.DEVICE_KEYS_INVALID, d)
        for d in ("BADSIG", "OTHER", "TAMPERED", "NOKEY", "JUNK")
    }


def test_a_deleted_device_is_dropped_and_returns_with_its_pinned_keys(
    alice: Peer, server: KeyServer
) -> None:
    keys = forged_device("@carol:x", "PHONE")
    server.device_keys["@carol:x"] = {"PHONE": keys}
    alice.machine.update_tracked_users(["@carol:x"])
    alice.pump()
    del server.device_keys["@carol:x"]["PHONE"]
    alice.sync(changed=["@carol:x"])
    alice.pump()
    assert alice.machine.known_devices("@carol:x") == []
    server.device_keys["@carol:x"]["PHONE"] = keys
    alice.sync(changed=["@carol:x"])
    alice.pump()
    assert alice.machine.known_devices("@carol:x") == ["PHONE"]
    assert alice.machine.drain_warnings() == []


def test_a_change_during_an_inflight_query_keeps_the_user_dirty(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    alice.machine.update_tracked_users([bob.user_id])
    (query,) = alice.machine.outgoing_requests()
    alice.save()
    response = server.handle(alice.user_id, alice.device_id, query)
    new_device = new_peer(server, bob.user_id, "BOB2")  # bob logs in again meanwhile
    alice.machine.receive_sync_changes([], [bob.user_id], now_ms=0)
    alice.machine.mark_request_sent(query.request_id, response)
    assert alice.machine.known_devices(bob.user_id) == ["BOB1"]
    alice.pump()  # a second query follows on its own
    assert alice.machine.known_devices(bob.user_id) == ["BOB1", new_device.device_id]


def test_changes_of_untracked_users_and_left_users_are_not_queried(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    alice.sync(changed=["@stranger:x"])
    alice.pump()
    assert queries(server, alice.user_id) == []
    alice.machine.update_tracked_users([bob.user_id])
    alice.pump()
    alice.sync(left=[bob.user_id])
    alice.sync(changed=[bob.user_id])
    alice.pump()
    assert len(queries(server, alice.user_id)) == 1
    # Pins survive the leave: on return a swapped key is still refused.
    server.device_keys[bob.user_id]["BOB1"] = forged_device(bob.user_id, "BOB1")
    alice.share(ROOM, {alice.user_id: Membership.JOIN, bob.user_id: Membership.JOIN})
    assert alice.machine.device_keys_changed(bob.user_id, "BOB1")
    assert (
        alice.machine.share_room_key(
            ROOM, {bob.user_id: Membership.JOIN}, HistoryVisibility.SHARED, 0
        )
        == []
    )


def test_our_own_device_in_a_query_is_skipped(alice: Peer) -> None:
    alice.machine.update_tracked_users([alice.user_id])
    alice.pump()
    assert alice.machine.known_devices(alice.user_id) == []
    assert alice.machine.drain_warnings() == []
