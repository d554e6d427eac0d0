"""Interop with libolm (python-olm): an independent C implementation of Olm and Megolm.

A libolm device, driven by hand as a client would, publishes signed device keys and
one-time keys; our machine verifies them (so our canonical JSON and signature checks agree
with libolm's signing), claims a key, sets up Olm, shares its room key; libolm decrypts
the Olm message and our Megolm event. Then the other way round.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import olm
from crypto_harness import KeyServer, Peer, room_event

from matrix_client._content import canonical_json
from matrix_client.crypto import Membership, SenderTrust

ROOM = "!room:x"
OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"


@attrs.define
class LibolmDevice:
    user_id: str
    device_id: str
    account: olm.Account = attrs.Factory(olm.Account)
    sessions: list[olm.Session] = attrs.Factory(list)
    group: olm.OutboundGroupSession = attrs.Factory(olm.OutboundGroupSession)

    @property
    def curve25519(self) -> str:
        return self.account.identity_keys["curve25519"]

    @property
    def ed25519(self) -> str:
        return self.account.identity_keys["ed25519"]

    def _signed(self, obj: dict[str, Any]) -> dict[str, Any]:
        signature = self.account.sign(canonical_json(obj).decode())
        return {**obj, "signatures": {self.user_id: {f"ed25519:{self.device_id}": signature}}}

    def publish(self, server: KeyServer) -> None:
        server.device_keys.setdefault(self.user_id, {})[self.device_id] = self._signed(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": [OLM, MEGOLM],
                "keys": {
                    f"curve25519:{self.device_id}": self.curve25519,
                    f"ed25519:{self.device_id}": self.ed25519,
                },
            }
        )
        self.account.generate_one_time_keys(5)
        server.otks[self.user_id, self.device_id] = {
            f"signed_curve25519:{key_id}": self._signed({"key": key})
            for key_id, key in self.account.one_time_keys["curve25519"].items()
        }
        self.account.mark_keys_as_published()

    def receive(self, server: KeyServer) -> list[dict[str, Any]]:
        """Decrypt every Olm to-device event for this device; the payloads."""
        payloads = []
        for event in server.inbox.pop((self.user_id, self.device_id), []):
            content = event["content"]
            ours = content["ciphertext"][self.curve25519]
            if ours["type"] == 0:
                message = olm.OlmPreKeyMessage(ours["body"])
                session = olm.InboundSession(self.account, message, content["sender_key"])
                self.account.remove_one_time_keys(session)
                self.sessions.insert(0, session)
            else:
                message = olm.OlmMessage(ours["body"])
                session = self.sessions[0]
            payloads.append(json.loads(session.decrypt(message)))
        return payloads

    def send_room_key(self, server: KeyServer, peer: Peer) -> dict[str, Any]:
        """Claim one of ``peer``'s OTKs, start Olm, and send our Megolm key: the event."""
        pool = server.otks[peer.user_id, peer.device_id]
        otk = pool.pop(sorted(pool)[0])["key"]
        their = peer.machine.identity_keys
        session = olm.OutboundSession(self.account, their.curve25519, otk)
        payload = {
            "type": "m.room_key",
            "content": {
                "algorithm": MEGOLM,
                "room_id": ROOM,
                "session_id": self.group.id,
                "session_key": self.group.session_key,
            },
            "sender": self.user_id,
            "sender_device": self.device_id,
            "keys": {"ed25519": self.ed25519},
            "recipient": peer.user_id,
            "recipient_keys": {"ed25519": their.ed25519},
        }
        message = session.encrypt(json.dumps(payload))
        self.sessions.insert(0, session)
        return {
            "type": "m.room.encrypted",
            "sender": self.user_id,
            "content": {
                "algorithm": OLM,
                "sender_key": self.curve25519,
                "ciphertext": {
                    their.curve25519: {"type": message.message_type, "body": message.ciphertext}
                },
            },
        }

    def encrypt(self, body: str) -> dict[str, Any]:
        plaintext = {"type": "m.room.message", "content": {"body": body}, "room_id": ROOM}
        return {
            "algorithm": MEGOLM,
            "sender_key": self.curve25519,
            "session_id": self.group.id,
            "device_id": self.device_id,
            "ciphertext": self.group.encrypt(json.dumps(plaintext)),
        }


def test_libolm_decrypts_our_olm_and_megolm(alice: Peer, server: KeyServer) -> None:
    lib = LibolmDevice("@lib:x", "LIB")
    lib.publish(server)
    alice.share(ROOM, {alice.user_id: Membership.JOIN, lib.user_id: Membership.JOIN})
    assert alice.machine.known_devices(lib.user_id) == ["LIB"]  # libolm's signature verified
    first = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "one"}, 0)
    second = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "two"}, 0)

    (payload,) = lib.receive(server)
    assert payload["type"] == "m.room_key"
    assert payload["sender"] == alice.user_id
    assert payload["recipient"] == lib.user_id
    assert payload["recipient_keys"] == {"ed25519": lib.ed25519}
    assert payload["keys"] == {"ed25519": alice.machine.identity_keys.ed25519}
    key = payload["content"]
    assert (key["algorithm"], key["room_id"]) == (MEGOLM, ROOM)
    inbound = olm.InboundGroupSession(key["session_key"])
    assert inbound.id == key["session_id"] == first["session_id"]
    for content, body, index in ((first, "one", 0), (second, "two", 1)):
        plaintext, message_index = inbound.decrypt(content["ciphertext"])
        assert message_index == index
        assert json.loads(plaintext) == {
            "type": "m.room.message",
            "content": {"body": body},
            "room_id": ROOM,
        }


def test_we_decrypt_libolms_olm_and_megolm(alice: Peer, server: KeyServer) -> None:
    lib = LibolmDevice("@lib:x", "LIB")
    lib.publish(server)
    alice.machine.update_tracked_users([lib.user_id])
    alice.pump()
    (room_key,) = alice.machine.receive_sync_changes([lib.send_room_key(server, alice)], now_ms=0)
    assert room_key.sender_device_id == "LIB"
    for n in range(3):
        event = room_event(lib.encrypt(f"msg {n}"), lib.user_id, f"${n}")
        decrypted = alice.machine.decrypt_room_event(ROOM, event)
        assert decrypted.content == {"body": f"msg {n}"}
        assert decrypted.message_index == n
        assert decrypted.trust is SenderTrust.PINNED_DEVICE
        assert decrypted.sender_device_id == "LIB"


def test_olm_replies_flow_over_the_session_libolm_started(alice: Peer, server: KeyServer) -> None:
    """libolm starts Olm with us (pre-key); our answer is a normal message on that session."""
    lib = LibolmDevice("@lib:x", "LIB")
    lib.publish(server)
    alice.machine.update_tracked_users([lib.user_id])
    alice.pump()
    alice.machine.receive_sync_changes([lib.send_room_key(server, alice)], now_ms=0)
    sent = alice.share(ROOM, {alice.user_id: Membership.JOIN, lib.user_id: Membership.JOIN})
    assert [r.kind.value for r in sent] == ["keys_query", "to_device"]  # no claim needed
    (to_device,) = [r for r in sent if r.kind.value == "to_device"]
    ciphertext = to_device.body["messages"][lib.user_id]["LIB"]["ciphertext"]
    assert ciphertext[lib.curve25519]["type"] == 1
    (payload,) = lib.receive(server)
    assert payload["type"] == "m.room_key"
