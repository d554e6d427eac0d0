"""A tiny in-test key server and peers: machines talking through their outgoing requests.

``KeyServer`` answers ``/keys/upload``, ``/keys/query``, ``/keys/claim`` and routes
``/sendToDevice`` like Synapse does in the parts that matter here: a re-upload of a
one-time key id with other contents is refused, a claim takes one OTK (else the fallback
key, which then counts as used), to-device sends are deduplicated by (sender, txn id).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import attrs

from matrix_client.crypto import (
    CryptoStore,
    DecryptedToDevice,
    HistoryVisibility,
    Membership,
    MemoryCryptoStore,
    OlmMachine,
    OutgoingRequest,
    RequestKind,
)

PICKLE_KEY = b"k" * 32


class UploadRejectedError(Exception):
    pass


@attrs.define
class KeyServer:
    device_keys: dict[str, dict[str, dict[str, Any]]] = attrs.Factory(dict)
    otks: dict[tuple[str, str], dict[str, Any]] = attrs.Factory(dict)
    fallback: dict[tuple[str, str], dict[str, Any]] = attrs.Factory(dict)
    fallback_used: set[tuple[str, str]] = attrs.Factory(set)
    inbox: dict[tuple[str, str], list[dict[str, Any]]] = attrs.Factory(dict)
    txns: set[tuple[str, str]] = attrs.Factory(set)
    #: Every request the server saw, as (user, kind, body).
    log: list[tuple[str, RequestKind, dict[str, Any]]] = attrs.Factory(list)
    #: To-device event types to drop on the floor (a lost message).
    drop_types: set[str] = attrs.Factory(set)

    def handle(self, user_id: str, device_id: str, request: OutgoingRequest) -> dict[str, Any]:
        body = copy.deepcopy(request.body)
        self.log.append((user_id, request.kind, body))
        me = (user_id, device_id)
        if request.kind is RequestKind.KEYS_UPLOAD:
            if "device_keys" in body:
                self.device_keys.setdefault(user_id, {})[device_id] = body["device_keys"]
            mine = self.otks.setdefault(me, {})
            for key_id, key in body.get("one_time_keys", {}).items():
                if key_id in mine and mine[key_id] != key:
                    raise UploadRejectedError(f"one-time key {key_id} already exists")
                mine[key_id] = key
            if body.get("fallback_keys"):
                self.fallback[me] = body["fallback_keys"]
                self.fallback_used.discard(me)
            return {"one_time_key_counts": {"signed_curve25519": len(mine)}}
        if request.kind is RequestKind.KEYS_QUERY:
            return {
                "device_keys": {
                    u: copy.deepcopy(self.device_keys.get(u, {})) for u in body["device_keys"]
                },
                "failures": {},
            }
        if request.kind is RequestKind.KEYS_CLAIM:
            answer: dict[str, dict[str, Any]] = {}
            for u, devices in body["one_time_keys"].items():
                for d in devices:
                    pool = self.otks.get((u, d), {})
                    if pool:
                        key_id = sorted(pool)[0]
                        answer.setdefault(u, {})[d] = {key_id: pool.pop(key_id)}
                    elif (u, d) in self.fallback:
                        self.fallback_used.add((u, d))
                        answer.setdefault(u, {})[d] = copy.deepcopy(self.fallback[u, d])
            return {"one_time_keys": answer, "failures": {}}
        assert request.kind is RequestKind.TO_DEVICE
        assert request.txn_id is not None
        if (user_id, request.txn_id) in self.txns:
            return {}
        self.txns.add((user_id, request.txn_id))
        if request.event_type in self.drop_types:
            return {}
        for u, devices in body["messages"].items():
            targets = list(self.device_keys.get(u, {})) if "*" in devices else list(devices)
            for d in targets:
                content = devices.get(d, devices.get("*"))
                event = {"type": request.event_type, "sender": user_id, "content": content}
                self.inbox.setdefault((u, d), []).append(event)
        return {}

    def sync_data(self, user_id: str, device_id: str) -> dict[str, Any]:
        me = (user_id, device_id)
        events = self.inbox.pop(me, [])
        unused = (
            [] if me in self.fallback_used or me not in self.fallback else ["signed_curve25519"]
        )
        return {
            "to_device_events": events,
            "one_time_key_counts": {"signed_curve25519": len(self.otks.get(me, {}))},
            "unused_fallback_key_types": unused,
        }


@attrs.define
class Peer:
    """A machine, its store, and the server it talks to; saves after every step."""

    server: KeyServer
    machine: OlmMachine
    store: CryptoStore

    @property
    def user_id(self) -> str:
        return self.machine.user_id

    @property
    def device_id(self) -> str:
        return self.machine.device_id

    def save(self) -> None:
        self.store.save_changes(self.machine.take_changes())

    def send(self, request: OutgoingRequest) -> None:
        """Send one request (after saving it, as the contract says) and mark it."""
        self.save()
        response = self.server.handle(self.user_id, self.device_id, request)
        self.machine.mark_request_sent(request.request_id, response)
        self.save()

    def pump(self, now_ms: int = 0) -> None:
        for _ in range(10):
            requests = self.machine.outgoing_requests(now_ms=now_ms)
            if not requests:
                return
            for request in requests:
                self.send(request)
        raise AssertionError("outgoing requests did not settle")

    def sync(
        self, now_ms: int = 0, changed: Sequence[str] = (), left: Sequence[str] = ()
    ) -> list[DecryptedToDevice]:
        data = self.server.sync_data(self.user_id, self.device_id)
        out = self.machine.receive_sync_changes(
            data["to_device_events"],
            changed,
            left,
            data["one_time_key_counts"],
            data["unused_fallback_key_types"],
            now_ms=now_ms,
        )
        self.save()
        return out

    def share(
        self,
        room_id: str,
        members: dict[str, Membership],
        visibility: HistoryVisibility = HistoryVisibility.SHARED,
        now_ms: int = 0,
        **kwargs: Any,
    ) -> list[OutgoingRequest]:
        """Run the share loop to the end; every request it sent."""
        sent: list[OutgoingRequest] = []
        for _ in range(10):
            requests = self.machine.share_room_key(room_id, members, visibility, now_ms, **kwargs)
            if not requests:
                return sent
            for request in requests:
                self.send(request)
                sent.append(request)
        raise AssertionError("share_room_key did not settle")

    def reload(self) -> None:
        """Restart: a new machine from what the store holds (unsaved changes are lost)."""
        self.machine = OlmMachine.load(self.store, pickle_key=PICKLE_KEY)


def new_peer(server: KeyServer, user_id: str, device_id: str) -> Peer:
    store = MemoryCryptoStore()
    machine = OlmMachine.create(user_id, device_id, store=store, pickle_key=PICKLE_KEY)
    peer = Peer(server, machine, store)
    peer.pump()
    return peer


def room_event(content: dict[str, Any], sender: str, event_id: str, ts: int = 1) -> dict[str, Any]:
    return {
        "type": "m.room.encrypted",
        "sender": sender,
        "event_id": event_id,
        "origin_server_ts": ts,
        "content": content,
    }


@attrs.define
class RawDevice:
    """A device driven by hand with vodozemac, to send what a correct machine never would."""

    user_id: str
    device_id: str
    account: Any = attrs.Factory(lambda: __import__("vodozemac").Account())
    sessions: dict[str, Any] = attrs.Factory(dict)

    @property
    def curve25519(self) -> str:
        return self.account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    def device_keys(self) -> dict[str, Any]:
        from matrix_client.crypto._signing import sign_json

        keys = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": self.curve25519,
                f"ed25519:{self.device_id}": self.ed25519,
            },
        }
        return sign_json(self.account, keys, self.user_id, self.device_id)

    def publish(self, server: KeyServer, one_time_keys: int = 0) -> None:
        from matrix_client.crypto._signing import sign_json

        server.device_keys.setdefault(self.user_id, {})[self.device_id] = self.device_keys()
        self.account.generate_one_time_keys(one_time_keys)
        server.otks[self.user_id, self.device_id] = {
            f"signed_curve25519:{key_id}": sign_json(
                self.account, {"key": key.to_base64()}, self.user_id, self.device_id
            )
            for key_id, key in self.account.one_time_keys.items()
        }
        self.account.mark_keys_as_published()

    def olm_event(self, server: KeyServer, target: Peer, payload: dict[str, Any]) -> dict[str, Any]:
        """An Olm to-device event carrying ``payload`` verbatim to ``target``'s device."""
        import json

        import vodozemac

        from matrix_client.crypto._signing import b64encode

        their_curve = target.machine.identity_keys.curve25519
        if their_curve not in self.sessions:
            pool = server.otks[target.user_id, target.device_id]
            otk = pool.pop(sorted(pool)[0])["key"]
            self.sessions[their_curve] = self.account.create_outbound_session(
                vodozemac.Curve25519PublicKey.from_base64(their_curve),
                vodozemac.Curve25519PublicKey.from_base64(otk),
            )
        message_type, body = (
            self.sessions[their_curve].encrypt(json.dumps(payload).encode()).to_parts()
        )
        return {
            "type": "m.room.encrypted",
            "sender": self.user_id,
            "content": {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.curve25519,
                "ciphertext": {their_curve: {"type": message_type, "body": b64encode(body)}},
            },
        }

    def payload(self, target: Peer, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """A correct payload (tests then break one field)."""
        return {
            "type": event_type,
            "content": content,
            "sender": self.user_id,
            "sender_device": self.device_id,
            "keys": {"ed25519": self.ed25519},
            "recipient": target.user_id,
            "recipient_keys": {"ed25519": target.machine.identity_keys.ed25519},
        }
