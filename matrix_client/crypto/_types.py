"""Public values and enums of the crypto state machine.

Everything the caller gets from or hands to :class:`OlmMachine` is one of these
frozen values: requests to send, decrypted events, warnings, room settings.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

#: The Olm to-device algorithm we speak.
OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
#: The Megolm room algorithm we speak.
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
#: The one-time / fallback key algorithm (the only one in the spec).
SIGNED_CURVE25519 = "signed_curve25519"

#: ``m.room.encryption`` defaults (spec): rotate after a week or 100 messages.
DEFAULT_ROTATION_PERIOD_MS = 7 * 24 * 3600 * 1000
DEFAULT_ROTATION_PERIOD_MSGS = 100


class RequestKind(enum.Enum):
    """What an :class:`OutgoingRequest` is, and so which endpoint it goes to."""

    KEYS_UPLOAD = "keys_upload"  #: POST /_matrix/client/v3/keys/upload
    KEYS_QUERY = "keys_query"  #: POST /_matrix/client/v3/keys/query
    KEYS_CLAIM = "keys_claim"  #: POST /_matrix/client/v3/keys/claim
    TO_DEVICE = "to_device"  #: PUT /_matrix/client/v3/sendToDevice/{event_type}/{txn_id}


@attrs.frozen
class OutgoingRequest:
    """A request the caller must send, then report with ``mark_request_sent``.

    ``body`` is the JSON body. For :attr:`RequestKind.TO_DEVICE`, ``event_type`` and
    ``txn_id`` go into the URL and ``body`` is ``{"messages": …}``. Every request is safe
    to send again after a crash (same body, same transaction id).
    """

    request_id: str
    kind: RequestKind
    body: dict[str, Any]
    event_type: str | None = None
    txn_id: str | None = None


class Membership(enum.Enum):
    """The membership of a room member that matters for key sharing."""

    JOIN = "join"
    INVITE = "invite"


class HistoryVisibility(enum.Enum):
    """``m.room.history_visibility``; decides whether invited members get the key."""

    WORLD_READABLE = "world_readable"
    SHARED = "shared"
    INVITED = "invited"
    JOINED = "joined"

    @classmethod
    def parse(cls, value: object) -> HistoryVisibility:
        """The spec's default is ``shared`` for a missing or unknown value."""
        try:
            return cls(value)
        except ValueError:
            return cls.SHARED

    @property
    def invited_members_get_keys(self) -> bool:
        """Invited (not yet joined) members may read from their invite on."""
        return self is not HistoryVisibility.JOINED

    @property
    def newcomers_get_current_session(self) -> bool:
        """A device that appears later may get the running session (from its current index).

        With ``joined`` visibility we rotate instead, so that a newcomer's key never covers
        a message sent before it joined, even one sent at an index it could ratchet to.
        """
        return self is not HistoryVisibility.JOINED


@attrs.frozen
class EncryptionSettings:
    """The room's ``m.room.encryption`` rotation settings (validated, with spec defaults)."""

    rotation_period_ms: int = DEFAULT_ROTATION_PERIOD_MS
    rotation_period_msgs: int = DEFAULT_ROTATION_PERIOD_MSGS

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> EncryptionSettings:
        """Read an ``m.room.encryption`` content; absurd values fall back to the defaults."""
        ms = content.get("rotation_period_ms")
        msgs = content.get("rotation_period_msgs")
        return cls(
            rotation_period_ms=ms
            if isinstance(ms, int) and not isinstance(ms, bool) and ms > 0
            else DEFAULT_ROTATION_PERIOD_MS,
            rotation_period_msgs=msgs
            if isinstance(msgs, int) and not isinstance(msgs, bool) and msgs > 0
            else DEFAULT_ROTATION_PERIOD_MSGS,
        )


@attrs.frozen
class IdentityKeys:
    """Our device's public identity keys (unpadded base64)."""

    curve25519: str
    ed25519: str


class SenderTrust(enum.Enum):
    """What we know of the device that created the Megolm session of an event.

    There is no cross-signing here: ``PINNED_DEVICE`` means trust on first use, the session
    came to us directly over Olm from a device whose keys match the keys we pinned for it.
    """

    PINNED_DEVICE = "pinned_device"
    #: The device is known but the session was forwarded, or its keys do not match the pin.
    UNVERIFIED = "unverified"
    #: We hold no device keys for the sender key of the session.
    UNKNOWN_DEVICE = "unknown_device"


@attrs.frozen
class DecryptedEvent:
    """A Megolm room event, decrypted and checked.

    ``content`` carries the clear ``m.relates_to`` of the encrypted event (the spec keeps
    it outside the ciphertext), so edits and threads work on the plaintext.
    """

    event_type: str
    content: dict[str, Any]
    room_id: str
    sender: str
    event_id: str
    session_id: str
    message_index: int
    sender_key: str
    sender_device_id: str | None
    trust: SenderTrust


@attrs.frozen
class DecryptedToDevice:
    """An Olm to-device event, decrypted, with its payload checks passed.

    ``sender_ed25519`` is the signing key the sender claimed in the payload; it matched
    the pinned key when the device is known (``sender_device_id`` is then its id).
    """

    event_type: str
    content: dict[str, Any]
    sender: str
    sender_key: str
    sender_ed25519: str
    sender_device_id: str | None


class WarningKind(enum.Enum):
    """Why something was dropped or refused; each is also logged."""

    OLM_DECRYPT_FAILED = "olm_decrypt_failed"
    OLM_PAYLOAD_MISMATCH = "olm_payload_mismatch"
    TO_DEVICE_MALFORMED = "to_device_malformed"
    ROOM_KEY_REJECTED = "room_key_rejected"
    FORWARDED_KEY_REJECTED = "forwarded_key_rejected"
    KEY_REQUEST_IGNORED = "key_request_ignored"
    DEVICE_KEYS_INVALID = "device_keys_invalid"
    DEVICE_KEYS_CHANGED = "device_keys_changed"
    ONE_TIME_KEY_INVALID = "one_time_key_invalid"
    RESPONSE_MALFORMED = "response_malformed"


@attrs.frozen
class CryptoWarning:
    """One thing the caller may want to tell the operator about; never holds key material."""

    kind: WarningKind
    reason: str
    user_id: str | None = None
    device_id: str | None = None
