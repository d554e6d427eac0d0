"""Everything the bot writes to Matrix rooms: the outbox (exactly-once sends, in order
per room), notices, the typing lease and the binding mirrors in room state."""

from surfaces.delivery.bindings import BindingMirror
from surfaces.delivery.notifier import (
    BODY_BUDGET_BYTES,
    NOTICE_MAX_PARTS,
    MessageKind,
    Notifier,
    answer_relation,
)
from surfaces.delivery.outbox import TXN_REF, Outbox, RoomEncryptor
from surfaces.delivery.receipts import ReadReceipts
from surfaces.delivery.typing_lease import TypingLease

__all__ = [
    "BODY_BUDGET_BYTES",
    "NOTICE_MAX_PARTS",
    "TXN_REF",
    "BindingMirror",
    "MessageKind",
    "Notifier",
    "Outbox",
    "ReadReceipts",
    "RoomEncryptor",
    "TypingLease",
    "answer_relation",
]
