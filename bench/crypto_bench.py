"""E2EE cost: sharing a room key with N devices, one room event each way, attachments.

    .venv/bin/python -m bench crypto_bench [--devices 10] [--repeat 20] [--mib 50]

Only our machine's own work is timed (no server, no network): the peers are bare
vodozemac accounts whose signed device keys and one-time keys are fed to the machine as
``/keys/query`` and ``/keys/claim`` answers.

* ``share_N``: query answer → claim answer → to-device build for N new devices: N OTK
  signature checks, N Olm outbound sessions, N Olm encryptions of the room key
  (``share_room_key`` ×3 + ``mark_request_sent`` ×2), median of ``--repeat`` runs;
* ``share_N_save``: the same plus ``take_changes`` + SQLite ``save_changes`` (in memory);
* ``encrypt`` / ``decrypt``: one ``m.room.message`` (median over 1,000), the decrypt
  including the replay record and plaintext checks;
* attachments: AES-CTR + SHA-256 throughput in MiB/s, streaming 64 KiB chunks.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import time
from typing import Any

import structlog
import vodozemac

from matrix_client.crypto import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    HistoryVisibility,
    Membership,
    MemoryCryptoStore,
    OlmMachine,
    SqliteCryptoStore,
)
from matrix_client.crypto._account import OwnAccount

KEY = b"b" * 32
ROOM = "!bench:x"


def _peer(n: int) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """A bare device: its signed device keys and one signed one-time key."""
    peer = OwnAccount(f"@u{n}:x", f"DEV{n}", vodozemac.Account())
    peer.account.generate_one_time_keys(1)
    (key_id, otk), *_ = peer.account.one_time_keys.items()
    otks = {f"signed_curve25519:{key_id}": peer.sign({"key": otk.to_base64()})}
    return peer.user_id, peer.device_id, peer.device_keys(), otks


def share_once(devices: int, save: bool) -> float:
    peers = [_peer(n) for n in range(devices)]
    store: Any = SqliteCryptoStore(sqlite3.connect(":memory:")) if save else MemoryCryptoStore()
    machine = OlmMachine.create("@bot:x", "BOT", store=store, pickle_key=KEY)
    (upload,) = machine.outgoing_requests()
    machine.mark_request_sent(upload.request_id, {"one_time_key_counts": {}})
    if save:
        store.save_changes(machine.take_changes())
    members = {"@bot:x": Membership.JOIN} | {u: Membership.JOIN for u, _, _, _ in peers}
    query_answer = {"device_keys": {u: {d: k} for u, d, k, _ in peers} | {"@bot:x": {}}}
    claim_answer = {"one_time_keys": {u: {d: o} for u, d, _, o in peers}}
    vis = HistoryVisibility.SHARED
    start = time.perf_counter()
    (query,) = machine.share_room_key(ROOM, members, vis, 0)
    machine.mark_request_sent(query.request_id, query_answer)
    (claim,) = machine.share_room_key(ROOM, members, vis, 0)
    machine.mark_request_sent(claim.request_id, claim_answer)
    to_device = machine.share_room_key(ROOM, members, vis, 0)
    if save:
        store.save_changes(machine.take_changes())
    elapsed = time.perf_counter() - start
    assert sum(len(r.body["messages"]) for r in to_device) == devices
    return elapsed


def event_costs(count: int) -> tuple[float, float]:
    user_id, device_id, device_keys, otks = _peer(0)
    machine = OlmMachine.create("@bot:x", "BOT", store=MemoryCryptoStore(), pickle_key=KEY)
    members = {"@bot:x": Membership.JOIN, user_id: Membership.JOIN}
    (query,) = machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    machine.mark_request_sent(
        query.request_id, {"device_keys": {user_id: {device_id: device_keys}}}
    )
    (claim,) = machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0)
    machine.mark_request_sent(claim.request_id, {"one_time_keys": {user_id: {device_id: otks}}})
    for request in machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0):
        machine.mark_request_sent(request.request_id, {})
    content = {"msgtype": "m.text", "body": "a typical reply of a few words " * 4}
    enc, dec = [], []
    for n in range(count):
        if n % 90 == 0:  # stay under the 100-message rotation
            machine.invalidate_room_session(ROOM)
            for request in machine.share_room_key(ROOM, members, HistoryVisibility.SHARED, 0):
                machine.mark_request_sent(request.request_id, {})
        t0 = time.perf_counter()
        encrypted = machine.encrypt_room_event(ROOM, "m.room.message", content, 0)
        t1 = time.perf_counter()
        event = {
            "sender": "@bot:x",
            "event_id": f"${n}",
            "origin_server_ts": n,
            "content": encrypted,
        }
        machine.decrypt_room_event(ROOM, event)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    return statistics.median(enc), statistics.median(dec)


def attachment_rates(mib: int) -> tuple[float, float]:
    chunk = b"\x5a" * 65_536
    chunks = mib * 16
    encryptor = AttachmentEncryptor()
    t0 = time.perf_counter()
    for _ in range(chunks):
        last = encryptor.update(chunk)
    encryptor.finalize()
    t1 = time.perf_counter()
    file = encryptor.file_object("mxc://x/y")
    decryptor = AttachmentDecryptor(file)
    t2 = time.perf_counter()
    for _ in range(chunks):
        decryptor.update(last)  # same size; the hash then fails, which we do not time
    t3 = time.perf_counter()
    return mib / (t1 - t0), mib / (t3 - t2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--mib", type=int, default=50)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    share = statistics.median(share_once(args.devices, False) for _ in range(args.repeat))
    saved = statistics.median(share_once(args.devices, True) for _ in range(args.repeat))
    enc, dec = event_costs(1_000)
    enc_rate, dec_rate = attachment_rates(args.mib)
    n = args.devices
    print(f"share_{n}: {share * 1e3:.2f} ms (median of {args.repeat})")
    print(f"share_{n}_save: {saved * 1e3:.2f} ms (with SQLite save_changes)")
    print(f"encrypt: {enc * 1e6:.0f} µs   decrypt: {dec * 1e6:.0f} µs (median of 1,000)")
    print(f"attachment encrypt: {enc_rate:.0f} MiB/s   decrypt: {dec_rate:.0f} MiB/s")
    return 0
