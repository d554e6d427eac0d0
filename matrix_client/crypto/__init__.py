"""End-to-end encryption for Matrix: a sans-I/O Olm/Megolm state machine on vodozemac.

:class:`OlmMachine` takes sync data in and hands out requests to send; it never does
I/O. Its state is saved by the caller (:meth:`OlmMachine.take_changes` →
:meth:`CryptoStore.save_changes`, in the caller's transaction) in a
:class:`MemoryCryptoStore` or a :class:`SqliteCryptoStore`. Encrypted attachments (the
spec's v2 ``file`` scheme) are in :class:`AttachmentEncryptor` /
:class:`AttachmentDecryptor`.
"""

from ._attachments import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    DecryptingChunks,
    EncryptingChunks,
    decrypt_attachment,
    encrypt_attachment,
)
from ._errors import (
    AccountNotFoundError,
    AttachmentError,
    BadCiphertextError,
    CryptoError,
    DecryptionError,
    EncryptionError,
    EventFormatError,
    MissingSessionError,
    PickleKeyError,
    ReplayError,
    RoomKeyNotSharedError,
    RoomMismatchError,
    SenderMismatchError,
    StoreError,
    UnsupportedAlgorithmError,
)
from ._machine import OlmMachine
from ._sqlite_store import SqliteCryptoStore
from ._store import (
    AccountRecord,
    Changes,
    CryptoStore,
    DeviceRecord,
    InboundGroupSessionRecord,
    KeyRequestRecord,
    MemoryCryptoStore,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingRequestRecord,
    ReplayRecord,
    TrackedUserRecord,
)
from ._types import (
    MEGOLM_ALGORITHM,
    OLM_ALGORITHM,
    CryptoWarning,
    DecryptedEvent,
    DecryptedToDevice,
    EncryptionSettings,
    HistoryVisibility,
    IdentityKeys,
    Membership,
    OutgoingRequest,
    RequestKind,
    SenderTrust,
    WarningKind,
)

__all__ = [
    "MEGOLM_ALGORITHM",
    "OLM_ALGORITHM",
    "AccountNotFoundError",
    "AccountRecord",
    "AttachmentDecryptor",
    "AttachmentEncryptor",
    "AttachmentError",
    "BadCiphertextError",
    "Changes",
    "CryptoError",
    "CryptoStore",
    "CryptoWarning",
    "DecryptedEvent",
    "DecryptedToDevice",
    "DecryptingChunks",
    "DecryptionError",
    "DeviceRecord",
    "EncryptingChunks",
    "EncryptionError",
    "EncryptionSettings",
    "EventFormatError",
    "HistoryVisibility",
    "IdentityKeys",
    "InboundGroupSessionRecord",
    "KeyRequestRecord",
    "Membership",
    "MemoryCryptoStore",
    "MissingSessionError",
    "OlmMachine",
    "OlmSessionRecord",
    "OutboundGroupSessionRecord",
    "OutgoingRequest",
    "PendingRequestRecord",
    "PickleKeyError",
    "ReplayError",
    "ReplayRecord",
    "RequestKind",
    "RoomKeyNotSharedError",
    "RoomMismatchError",
    "SenderMismatchError",
    "SenderTrust",
    "SqliteCryptoStore",
    "StoreError",
    "TrackedUserRecord",
    "UnsupportedAlgorithmError",
    "WarningKind",
    "decrypt_attachment",
    "encrypt_attachment",
]
