"""E2EE transport methods: key upload / query / claim and to-device messages.

Thin on purpose: the JSON bodies are built (and the answers interpreted) by the
crypto state machine; these methods add the paths, the retry rules and the
size check, and return the parsed JSON object. :meth:`KeyMethods.send_crypto_request`
sends whatever :class:`~matrix_client.crypto.OlmMachine` asks for to the right one.
"""

from __future__ import annotations

from ._content import canonical_json
from ._errors import EventTooLargeError
from ._http import CLIENT_V3, HttpCore, seg
from ._models import JsonDict
from .crypto import OutgoingRequest, RequestKind

#: Synapse refuses a to-device message whose canonical JSON content exceeds this
#: (``MAX_TO_DEVICE_CONTENT_SIZE``, 413 ``M_TOO_LARGE``): it could not federate it.
MAX_TO_DEVICE_CONTENT_BYTES = 65_536


class KeyMethods(HttpCore):
    __slots__ = ()

    async def keys_upload(self, body: JsonDict) -> JsonDict:
        """``POST /keys/upload`` → ``{"one_time_key_counts": {...}}``.

        Retried like a PUT: re-uploading the same keys is accepted by the server
        (a one-time key id is refused only with *different* content).
        """
        return await self._call_object(
            "POST", f"{CLIENT_V3}/keys/upload", "POST /keys/upload", idempotent=True, json_body=body
        )

    async def keys_query(self, body: JsonDict) -> JsonDict:
        """``POST /keys/query`` → ``{"device_keys": …, "failures": …}`` (read-only: retried)."""
        return await self._call_object(
            "POST", f"{CLIENT_V3}/keys/query", "POST /keys/query", idempotent=True, json_body=body
        )

    async def keys_claim(self, body: JsonDict) -> JsonDict:
        """``POST /keys/claim`` → ``{"one_time_keys": …, "failures": …}``.

        Retried after a lost answer: a repeated claim only uses up one more of the
        peer's one-time keys (the peer replenishes them), while not retrying leaves
        us without an Olm session.
        """
        return await self._call_object(
            "POST", f"{CLIENT_V3}/keys/claim", "POST /keys/claim", idempotent=True, json_body=body
        )

    async def send_to_device(
        self, event_type: str, messages: dict[str, dict[str, JsonDict]], *, txn_id: str
    ) -> JsonDict:
        """``PUT /sendToDevice/{eventType}/{txnId}`` with ``{"messages": messages}``.

        ``messages`` maps user id → device id (or ``"*"``) → content. The server
        deduplicates per (device, ``txn_id``): reuse the txn id on every retry.

        Raises:
            EventTooLargeError: before any request, for a content over 64 KiB
                (Synapse would answer 413).
        """
        for by_device in messages.values():
            for content in by_device.values():
                size = len(canonical_json(content))
                if size > MAX_TO_DEVICE_CONTENT_BYTES:
                    raise EventTooLargeError(size, MAX_TO_DEVICE_CONTENT_BYTES)
        return await self._call_object(
            "PUT",
            f"{CLIENT_V3}/sendToDevice/{seg(event_type)}/{seg(txn_id)}",
            "PUT /sendToDevice/{eventType}/{txnId}",
            json_body={"messages": messages},
        )

    async def send_crypto_request(self, request: OutgoingRequest) -> JsonDict:
        """Send one request of :meth:`OlmMachine.outgoing_requests` (or of
        ``share_room_key``) to its endpoint; the answer is what
        ``mark_request_sent`` takes. Every kind is safe to repeat (see each method).
        """
        if request.kind is RequestKind.KEYS_UPLOAD:
            return await self.keys_upload(request.body)
        if request.kind is RequestKind.KEYS_QUERY:
            return await self.keys_query(request.body)
        if request.kind is RequestKind.KEYS_CLAIM:
            return await self.keys_claim(request.body)
        if request.event_type is None or request.txn_id is None:
            raise ValueError(f"to-device request {request.request_id} without type or txn id")
        return await self.send_to_device(
            request.event_type, request.body["messages"], txn_id=request.txn_id
        )
