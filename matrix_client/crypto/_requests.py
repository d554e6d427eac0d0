"""Pending outgoing requests: made durable before they are sent, settled when answered.

Each request is a :class:`PendingRequestRecord` in the machine's changes the moment it is
created, so the caller persists it (``take_changes`` → ``save_changes``) **before**
sending it. After a crash the same request (same body, same transaction id) comes back
from ``outgoing_requests``; every one of them is safe to repeat: a key upload of the same
keys under the same ids, a query, a claim (it costs one more one-time key), a to-device
send that the server deduplicates by its transaction id.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from ._state import State
from ._store import PendingRequestRecord
from ._types import OutgoingRequest, RequestKind

#: Devices per ``/sendToDevice`` request (keeps each body well under server limits).
MAX_DEVICES_PER_TO_DEVICE = 100


class Purpose(enum.Enum):
    """What to do when a request was sent (stored with it)."""

    UPLOAD = "upload"
    QUERY = "query"
    CLAIM_FOR_SHARE = "claim_for_share"
    CLAIM_FOR_UNWEDGE = "claim_for_unwedge"
    ROOM_KEY = "room_key"
    KEY_REQUEST = "key_request"
    KEY_REQUEST_CANCEL = "key_request_cancel"
    FORWARDED_KEY = "forwarded_key"
    DUMMY = "dummy"


_ORDER = {
    RequestKind.KEYS_UPLOAD: 0,
    RequestKind.KEYS_QUERY: 1,
    RequestKind.KEYS_CLAIM: 2,
    RequestKind.TO_DEVICE: 3,
}


def add(
    state: State,
    kind: RequestKind,
    body: dict[str, Any],
    purpose: Purpose,
    *,
    event_type: str | None = None,
    **extra: Any,
) -> OutgoingRequest:
    request_id = uuid.uuid4().hex
    data = {
        "kind": kind.value,
        "body": body,
        "event_type": event_type,
        "purpose": purpose.value,
        "seq": state.next_seq(),
        **extra,
    }
    record = PendingRequestRecord(request_id, data)
    state.put_request(record)
    return to_outgoing(record)


def add_to_device(
    state: State,
    event_type: str,
    messages: dict[str, dict[str, Any]],
    purpose: Purpose,
    **extra: Any,
) -> list[OutgoingRequest]:
    """One or more to-device requests carrying ``messages`` (user → device → content)."""
    flat = [(u, d, c) for u, by_device in messages.items() for d, c in by_device.items()]
    requests = []
    for start in range(0, len(flat), MAX_DEVICES_PER_TO_DEVICE):
        chunk: dict[str, dict[str, Any]] = {}
        for user_id, device_id, content in flat[start : start + MAX_DEVICES_PER_TO_DEVICE]:
            chunk.setdefault(user_id, {})[device_id] = content
        requests.append(
            add(
                state,
                RequestKind.TO_DEVICE,
                {"messages": chunk},
                purpose,
                event_type=event_type,
                **extra,
            )
        )
    return requests


def to_outgoing(record: PendingRequestRecord) -> OutgoingRequest:
    kind = RequestKind(record.data["kind"])
    to_device = kind is RequestKind.TO_DEVICE
    return OutgoingRequest(
        record.request_id,
        kind,
        record.data["body"],
        event_type=record.data["event_type"] if to_device else None,
        txn_id=record.request_id if to_device else None,
    )


def find(state: State, purpose: Purpose, **match: Any) -> list[PendingRequestRecord]:
    """Pending requests of ``purpose`` whose stored extras equal ``match``."""
    return [
        r
        for r in state.requests.values()
        if r.data["purpose"] == purpose.value and all(r.data.get(k) == v for k, v in match.items())
    ]


def ordered(state: State) -> list[OutgoingRequest]:
    """Every pending request: uploads, queries, claims, then to-device, each oldest first."""
    records = sorted(
        state.requests.values(),
        key=lambda r: (_ORDER[RequestKind(r.data["kind"])], r.data["seq"]),
    )
    return [to_outgoing(r) for r in records]
