"""Exceptions raised by :mod:`matrix_client.crypto`.

One class per failure kind, so the caller can act on each: a missing key is worth a
key request and a later retry; a replay or a forged event is to be dropped; a broken
store is fatal. All derive from :class:`CryptoError`.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error of the crypto state machine."""


class DecryptionError(CryptoError):
    """A room event could not be decrypted; the event is to be treated as unreadable."""


class EventFormatError(DecryptionError):
    """The encrypted event or its plaintext is not shaped as the spec says."""


class UnsupportedAlgorithmError(DecryptionError):
    """The event uses an algorithm we do not implement (only ``m.megolm.v1.aes-sha2``)."""


class MissingSessionError(DecryptionError):
    """We hold no Megolm session (or not from this index) for the event: request the key.

    Carries what :meth:`OlmMachine.request_room_key` needs. ``first_known_index`` is set
    when we hold the session but only from a later message index than the event's.
    """

    def __init__(
        self,
        room_id: str,
        session_id: str,
        sender_key: str | None,
        sender: str,
        device_id: str | None,
        first_known_index: int | None = None,
    ) -> None:
        super().__init__(room_id, session_id, sender_key, sender, device_id, first_known_index)
        self.room_id = room_id
        self.session_id = session_id
        self.sender_key = sender_key
        self.sender = sender
        self.device_id = device_id
        self.first_known_index = first_known_index

    def __str__(self) -> str:
        if self.first_known_index is not None:
            return (
                f"session {self.session_id} in {self.room_id} known only from index "
                f"{self.first_known_index}"
            )
        return f"no session {self.session_id} in {self.room_id} (sender {self.sender})"


class ReplayError(DecryptionError):
    """A Megolm message index of a session was already used by another event.

    Either the server (or someone who holds the session key) re-sent an old ciphertext
    under a new event id, or the sender reused a ratchet state: drop the event.
    """


class RoomMismatchError(DecryptionError):
    """The plaintext names another room than the one the event arrived in."""


class SenderMismatchError(DecryptionError):
    """The session belongs to another sender (user or key) than the event claims."""


class BadCiphertextError(DecryptionError):
    """The ciphertext is corrupt, or its signature does not verify."""


class EncryptionError(CryptoError):
    """A room event could not be encrypted."""


class RoomKeyNotSharedError(EncryptionError):
    """No usable outbound session for the room: call ``share_room_key`` first."""


class StoreError(CryptoError):
    """The crypto store is missing data, holds data we cannot read, or is from the future."""


class AccountNotFoundError(StoreError):
    """The store holds no account: this is a new (or lost) device identity."""


class PickleKeyError(StoreError):
    """The pickles in the store do not open with this pickle key (wrong key or corrupt)."""


class AttachmentError(CryptoError):
    """An encrypted attachment's ``file`` object is invalid, or its hash does not match."""
