"""Persistence: SQLite and memory stores, crash safety, pickle keys, lazy loading."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from crypto_harness import PICKLE_KEY, KeyServer, Peer, room_event

from matrix_client.crypto import (
    HistoryVisibility,
    Membership,
    MemoryCryptoStore,
    OlmMachine,
    PickleKeyError,
    RequestKind,
    SqliteCryptoStore,
    StoreError,
)
from matrix_client.crypto._state import Lru

ROOM = "!room:x"


class TxStore(SqliteCryptoStore):
    """A SQLite store whose caller wraps each save in its own transaction, as the bot does."""

    def save_changes(self, changes):  # type: ignore[no-untyped-def]
        with self._conn:  # type: ignore[attr-defined]
            super().save_changes(changes)


def sqlite_peer(server: KeyServer, path: Path, user_id: str, device_id: str) -> Peer:
    conn = sqlite3.connect(path)
    store = TxStore(conn)
    conn.commit()
    machine = OlmMachine.create(user_id, device_id, store=store, pickle_key=PICKLE_KEY)
    peer = Peer(server, machine, store)
    peer.pump()
    return peer


def reopen(peer: Peer, path: Path, pickle_key: bytes = PICKLE_KEY) -> Peer:
    store = TxStore(sqlite3.connect(path))
    return Peer(peer.server, OlmMachine.load(store, pickle_key=pickle_key), store)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def members(*peers: Peer) -> dict[str, Membership]:
    return {p.user_id: Membership.JOIN for p in peers}


def test_sqlite_round_trip_keeps_sessions_and_shares(
    server: KeyServer, bob: Peer, db: Path
) -> None:
    alice = sqlite_peer(server, db, "@alice:x", "ALICE1")
    alice.share(ROOM, members(alice, bob))
    first = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "1"}, 0)
    alice.save()
    bob.sync()
    bob.share(ROOM, members(alice, bob))
    from_bob = bob.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "b"}, 0)

    alice = reopen(alice, db)
    assert (
        alice.machine.share_room_key(ROOM, members(alice, bob), HistoryVisibility.SHARED, 0) == []
    )
    second = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "2"}, 0)
    assert second["session_id"] == first["session_id"]
    alice.sync()  # bob's key comes over the Olm session stored in SQLite
    event = alice.machine.decrypt_room_event(ROOM, room_event(from_bob, bob.user_id, "$b"))
    assert event.content == {"body": "b"}
    own = alice.machine.decrypt_room_event(ROOM, room_event(first, alice.user_id, "$1"))
    assert own.content == {"body": "1"}
    for n, content in enumerate((first, second)):
        got = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, f"${n}"))
        assert got.content == {"body": str(n + 1)}


def test_sqlite_wrong_pickle_key_fails_cleanly(server: KeyServer, db: Path) -> None:
    alice = sqlite_peer(server, db, "@alice:x", "ALICE1")
    with pytest.raises(PickleKeyError):
        reopen(alice, db, pickle_key=b"w" * 32)
    assert reopen(alice, db).machine.identity_keys == alice.machine.identity_keys


def test_sqlite_store_never_commits(db: Path, server: KeyServer) -> None:
    conn = sqlite3.connect(db)
    store = SqliteCryptoStore(conn)
    conn.commit()
    machine = OlmMachine.create("@a:x", "A", store=store, pickle_key=PICKLE_KEY)
    store.save_changes(machine.take_changes())
    assert conn.in_transaction
    conn.rollback()  # the caller's transaction failed: nothing of it remains
    assert store.load_account() is None
    assert SqliteCryptoStore(sqlite3.connect(db)).load_account() is None


def test_sqlite_refuses_a_newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    SqliteCryptoStore(conn)
    conn.execute("UPDATE crypto_schema SET version = 99")
    conn.commit()
    with pytest.raises(StoreError, match="newer"):
        SqliteCryptoStore(conn)


def test_sqlite_tables_live_beside_the_callers(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE sync_token (token TEXT)")
    SqliteCryptoStore(conn)
    conn.commit()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "sync_token" in names
    assert all(n.startswith("crypto_") for n in names - {"sync_token", "sqlite_sequence"})


def test_unsaved_to_device_effects_are_redone_when_the_event_is_fed_again(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    events = server.sync_data(bob.user_id, bob.device_id)["to_device_events"]
    bob.machine.receive_sync_changes(events, now_ms=0)  # ... and the process dies unsaved
    bob.reload()
    assert not bob.machine.has_room_key(ROOM, content["session_id"])
    bob.machine.receive_sync_changes(events, now_ms=0)  # the bot fed its stored events again
    bob.save()
    bob.reload()
    event = bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1"))
    assert event.content == {"body": "x"}


def test_a_key_share_sent_but_not_marked_is_resent_with_the_same_txn_id(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    ms = members(alice, bob)
    vis = HistoryVisibility.SHARED
    for _ in range(2):  # query, claim
        for request in alice.machine.share_room_key(ROOM, ms, vis, 0):
            alice.send(request)
    (to_device,) = alice.machine.share_room_key(ROOM, ms, vis, 0)
    alice.save()  # durable before it goes out
    server.handle(alice.user_id, alice.device_id, to_device)  # sent; crash before the mark
    alice.reload()
    (again,) = alice.machine.share_room_key(ROOM, ms, vis, 0)
    assert (again.request_id, again.txn_id, again.body) == (
        to_device.request_id,
        to_device.txn_id,
        to_device.body,
    )
    assert again in alice.machine.outgoing_requests()
    alice.send(again)
    assert alice.machine.share_room_key(ROOM, ms, vis, 0) == []
    assert [e.event_type for e in bob.sync()] == ["m.room_key"]  # delivered once


def test_a_claim_sent_but_not_marked_is_claimed_again_safely(
    alice: Peer, bob: Peer, server: KeyServer
) -> None:
    ms = members(alice, bob)
    vis = HistoryVisibility.SHARED
    for request in alice.machine.share_room_key(ROOM, ms, vis, 0):
        alice.send(request)
    (claim,) = alice.machine.share_room_key(ROOM, ms, vis, 0)
    assert claim.kind is RequestKind.KEYS_CLAIM
    alice.save()
    server.handle(alice.user_id, alice.device_id, claim)
    alice.reload()
    assert alice.share(ROOM, ms)[0] == claim  # the same claim again (costs one more OTK)
    alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    assert [e.event_type for e in bob.sync()] == ["m.room_key"]


class CountingStore(MemoryCryptoStore):
    def __init__(self) -> None:
        super().__init__()
        self.inbound_reads: list[tuple[str, str]] = []

    def inbound_group_session(self, room_id, session_id):  # type: ignore[no-untyped-def]
        self.inbound_reads.append((room_id, session_id))
        return super().inbound_group_session(room_id, session_id)


def test_inbound_sessions_are_read_lazily_and_cached(alice: Peer, server: KeyServer) -> None:
    store = CountingStore()
    machine = OlmMachine.create("@bob:x", "BOB1", store=store, pickle_key=PICKLE_KEY)
    bob = Peer(server, machine, store)
    bob.pump()
    alice.share(ROOM, members(alice, bob))
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"}, 0)
    bob.sync()
    store.inbound_reads.clear()
    bob.reload()
    assert store.inbound_reads == []  # nothing is loaded at start
    for _ in range(3):
        bob.machine.decrypt_room_event(ROOM, room_event(content, alice.user_id, "$1"))
    assert store.inbound_reads == [(ROOM, content["session_id"])]


def test_lru_forgets_the_least_recently_used() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert "b" not in lru
    assert (lru.get("a"), lru.get("c")) == (1, 3)


def test_the_store_sees_nothing_before_save(alice: Peer, server: KeyServer) -> None:
    saved = alice.store.load_account()
    server.otks[alice.user_id, alice.device_id].clear()
    data = server.sync_data(alice.user_id, alice.device_id)
    alice.machine.receive_sync_changes(
        [], one_time_key_counts=data["one_time_key_counts"], now_ms=0
    )
    assert alice.store.load_account() == saved
    assert alice.store.pending_requests() == []
    alice.save()
    assert alice.store.load_account() != saved
    assert len(alice.store.pending_requests()) == 1
