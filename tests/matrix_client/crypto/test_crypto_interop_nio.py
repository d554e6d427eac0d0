"""Interop with matrix-nio's E2EE machine: an independent implementation of the protocol.

nio builds and checks Olm payloads, signs and verifies device keys, handles
``m.room_key`` and replay checks its own way; it talks to our machine through the same
in-test key server. Our room key reaches nio and nio decrypts our events; nio's room key
reaches us and we decrypt nio's events. nio's attachment code (pycryptodome) and ours
(``cryptography``) read each other's files.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from crypto_harness import KeyServer, Peer, room_event
from nio.crypto import Olm
from nio.crypto.attachments import decrypt_attachment as nio_decrypt
from nio.crypto.attachments import encrypt_attachment as nio_encrypt
from nio.events import MegolmEvent, RoomKeyEvent, RoomMessageText, ToDeviceEvent
from nio.responses import KeysClaimResponse, KeysQueryResponse, KeysUploadResponse
from nio.store import SqliteMemoryStore

from matrix_client.crypto import (
    Membership,
    OutgoingRequest,
    RequestKind,
    SenderTrust,
    decrypt_attachment,
    encrypt_attachment,
)

ROOM = "!room:x"


class NioPeer:
    """nio's ``Olm`` machine, fed through the key server like a client would."""

    def __init__(self, server: KeyServer, user_id: str, device_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.device_id = device_id
        self.olm = Olm(user_id, device_id, SqliteMemoryStore(user_id, device_id))
        self._call(RequestKind.KEYS_UPLOAD, self.olm.share_keys(), KeysUploadResponse)

    def _call(self, kind: RequestKind, body: dict[str, Any], response_type: Any) -> Any:
        answer = self.server.handle(
            self.user_id, self.device_id, OutgoingRequest("nio", kind, copy.deepcopy(body))
        )
        response = response_type.from_dict(answer)
        self.olm.handle_response(response)
        return response

    def query(self, *user_ids: str) -> None:
        self.olm.users_for_key_query.update(user_ids)
        body = {"device_keys": {u: [] for u in user_ids}}
        self._call(RequestKind.KEYS_QUERY, body, KeysQueryResponse)

    def claim(self, *user_ids: str) -> None:
        missing = self.olm.get_missing_sessions(list(user_ids))
        body = {
            "one_time_keys": {
                u: dict.fromkeys(devices, "signed_curve25519") for u, devices in missing.items()
            }
        }
        self._call(RequestKind.KEYS_CLAIM, body, KeysClaimResponse)

    def share(self, *user_ids: str) -> None:
        _, to_device = self.olm.share_group_session(
            ROOM, list(user_ids), ignore_unverified_devices=True
        )
        request = OutgoingRequest(
            "nio-share",
            RequestKind.TO_DEVICE,
            to_device,
            event_type="m.room.encrypted",
            txn_id="nio-share",
        )
        self.server.handle(self.user_id, self.device_id, request)
        self.olm.outbound_group_sessions[ROOM].shared = True

    def receive(self) -> list[Any]:
        events = self.server.inbox.pop((self.user_id, self.device_id), [])
        return [self.olm.handle_to_device_event(ToDeviceEvent.parse_event(e)) for e in events]


@pytest.fixture
def nio_peer(server: KeyServer) -> NioPeer:
    return NioPeer(server, "@nio:x", "NIODEV")


def test_nio_decrypts_our_room_events(alice: Peer, nio_peer: NioPeer) -> None:
    alice.share(ROOM, {alice.user_id: Membership.JOIN, nio_peer.user_id: Membership.JOIN})
    assert alice.machine.known_devices(nio_peer.user_id) == ["NIODEV"]
    contents = [
        alice.machine.encrypt_room_event(
            ROOM, "m.room.message", {"msgtype": "m.text", "body": b}, 0
        )
        for b in ("hello nio", "second")
    ]
    (room_key,) = nio_peer.receive()  # nio's own Olm payload checks pass on our payload
    assert isinstance(room_key, RoomKeyEvent)
    assert room_key.session_id == contents[0]["session_id"]
    for n, content in enumerate(contents):
        event = MegolmEvent.from_dict(room_event(content, alice.user_id, f"${n}"))
        decrypted = nio_peer.olm.decrypt_megolm_event(event, ROOM)
        assert isinstance(decrypted, RoomMessageText)
        assert decrypted.body == ("hello nio", "second")[n]


def test_we_decrypt_nios_room_events(alice: Peer, nio_peer: NioPeer) -> None:
    nio_peer.query(alice.user_id)
    nio_peer.claim(alice.user_id)
    nio_peer.share(alice.user_id)
    alice.machine.update_tracked_users([nio_peer.user_id])
    alice.pump()
    (room_key,) = alice.sync()
    assert room_key.event_type == "m.room_key"
    assert room_key.sender_device_id == "NIODEV"
    content = nio_peer.olm.group_encrypt(
        ROOM, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "from nio"}}
    )
    event = alice.machine.decrypt_room_event(ROOM, room_event(content, nio_peer.user_id, "$n"))
    assert event.content == {"msgtype": "m.text", "body": "from nio"}
    assert event.trust is SenderTrust.PINNED_DEVICE


def test_attachments_interoperate_with_nio() -> None:
    data = b"\x00\x01 a small file " * 1000
    ciphertext, encryptor = encrypt_attachment(data)
    file = encryptor.file_object("mxc://x/1")
    assert nio_decrypt(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]) == data
    nio_ciphertext, keys = nio_encrypt(data)
    theirs = {**keys, "url": "mxc://x/2"}
    assert decrypt_attachment(nio_ciphertext, theirs) == data
