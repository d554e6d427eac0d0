"""Device identity: device keys, one-time keys kept at half the account's capacity, fallback."""

from __future__ import annotations

import pytest
from crypto_harness import PICKLE_KEY, KeyServer, Peer, new_peer

from matrix_client.crypto import (
    AccountNotFoundError,
    MemoryCryptoStore,
    OlmMachine,
    RequestKind,
    StoreError,
)
from matrix_client.crypto._signing import verify_signed_json


def uploads(server: KeyServer, user_id: str) -> list[dict]:
    return [b for u, k, b in server.log if u == user_id and k is RequestKind.KEYS_UPLOAD]


def test_first_upload_has_signed_device_keys_otks_and_a_fallback_key(server: KeyServer) -> None:
    store = MemoryCryptoStore()
    machine = OlmMachine.create("@bot:x", "BOT", store=store, pickle_key=PICKLE_KEY)
    (request,) = machine.outgoing_requests()
    assert request.kind is RequestKind.KEYS_UPLOAD
    body = request.body
    keys = machine.identity_keys
    device_keys = body["device_keys"]
    assert device_keys["keys"] == {"curve25519:BOT": keys.curve25519, "ed25519:BOT": keys.ed25519}
    assert device_keys["algorithms"] == ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]
    assert verify_signed_json(device_keys, "@bot:x", "BOT", keys.ed25519)
    otks = body["one_time_keys"]
    assert len(otks) == 25  # half of vodozemac's 50
    assert all(k.startswith("signed_curve25519:") for k in otks)
    assert all(verify_signed_json(v, "@bot:x", "BOT", keys.ed25519) for v in otks.values())
    (fallback,) = body["fallback_keys"].values()
    assert fallback["fallback"] is True
    assert verify_signed_json(fallback, "@bot:x", "BOT", keys.ed25519)


def test_after_the_upload_nothing_more_until_the_count_drops(server: KeyServer) -> None:
    peer = new_peer(server, "@bot:x", "BOT")
    assert len(uploads(server, "@bot:x")) == 1
    peer.sync()  # the server holds 25
    assert peer.machine.outgoing_requests() == []
    for _ in range(10):  # ten claims by others
        server.otks["@bot:x", "BOT"].popitem()
    peer.sync()
    (request,) = peer.machine.outgoing_requests()
    assert "device_keys" not in request.body
    assert len(request.body["one_time_keys"]) == 10
    first_ids = set(uploads(server, "@bot:x")[0]["one_time_keys"])
    assert not first_ids & set(request.body["one_time_keys"])  # new keys, new ids
    peer.pump()
    assert len(server.otks["@bot:x", "BOT"]) == 25


def test_a_second_sync_while_the_upload_is_out_does_not_generate_more(server: KeyServer) -> None:
    peer = new_peer(server, "@bot:x", "BOT")
    server.otks["@bot:x", "BOT"].clear()
    peer.sync()
    peer.sync()  # still 0 on the server: the pending upload covers it
    (request,) = peer.machine.outgoing_requests()
    assert len(request.body["one_time_keys"]) == 25


def test_a_used_fallback_key_is_replaced(server: KeyServer) -> None:
    peer = new_peer(server, "@bot:x", "BOT")
    old = server.fallback["@bot:x", "BOT"]
    server.fallback_used.add(("@bot:x", "BOT"))
    peer.sync()
    (request,) = peer.machine.outgoing_requests()
    assert "one_time_keys" not in request.body
    assert request.body["fallback_keys"] != old
    peer.pump()
    peer.sync()
    assert peer.machine.outgoing_requests() == []


def test_a_missing_otk_count_means_zero_but_no_counts_means_no_decision(
    server: KeyServer,
) -> None:
    peer = new_peer(server, "@bot:x", "BOT")
    peer.machine.receive_sync_changes([], now_ms=0)  # the server said nothing
    assert peer.machine.outgoing_requests() == []
    peer.machine.receive_sync_changes([], one_time_key_counts={}, now_ms=0)
    (request,) = peer.machine.outgoing_requests()
    assert len(request.body["one_time_keys"]) == 25


def test_load_refuses_empty_store_other_identity_and_bad_pickle_key(server: KeyServer) -> None:
    with pytest.raises(AccountNotFoundError):
        OlmMachine.load(MemoryCryptoStore(), pickle_key=PICKLE_KEY)
    peer = new_peer(server, "@bot:x", "BOT")
    with pytest.raises(StoreError):
        OlmMachine.load(peer.store, pickle_key=PICKLE_KEY, device_id="OTHER")
    with pytest.raises(StoreError):
        OlmMachine.create("@bot:x", "BOT", store=peer.store, pickle_key=PICKLE_KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        OlmMachine.load(peer.store, pickle_key=b"short")
    loaded = OlmMachine.load(peer.store, pickle_key=PICKLE_KEY, user_id="@bot:x", device_id="BOT")
    assert loaded.identity_keys == peer.machine.identity_keys


def test_crash_after_upload_before_mark_reissues_the_same_keys(server: KeyServer) -> None:
    store = MemoryCryptoStore()
    machine = OlmMachine.create("@bot:x", "BOT", store=store, pickle_key=PICKLE_KEY)
    store.save_changes(machine.take_changes())  # saved before sending, as required
    (request,) = machine.outgoing_requests()
    server.handle("@bot:x", "BOT", request)  # sent... and the process dies before marking
    peer = Peer(server, OlmMachine.load(store, pickle_key=PICKLE_KEY), store)
    (again,) = peer.machine.outgoing_requests()
    assert again == request
    peer.send(again)  # the server accepts the very same keys again
    assert peer.machine.outgoing_requests() == []
    assert len(server.otks["@bot:x", "BOT"]) == 25


def test_unsaved_identity_is_not_an_identity(server: KeyServer) -> None:
    store = MemoryCryptoStore()
    OlmMachine.create("@bot:x", "BOT", store=store, pickle_key=PICKLE_KEY)
    with pytest.raises(AccountNotFoundError):
        OlmMachine.load(store, pickle_key=PICKLE_KEY)


def test_pickles_never_hold_key_material_in_clear(server: KeyServer) -> None:
    peer = new_peer(server, "@bot:x", "BOT")
    changes = peer.machine.take_changes()
    assert changes.is_empty
    record = peer.store.load_account()
    assert record is not None
    assert peer.machine.identity_keys.curve25519 not in record.pickle
