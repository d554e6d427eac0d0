"""Everything the bot writes to Matrix rooms: the outbox (exactly-once sends, in order
per room), notices, the typing lease and the binding mirrors in room state."""

from surfaces.delivery.bindings import BindingMirror
from surfaces.delivery.notifier import Notifier
from surfaces.delivery.outbox import TXN_REF, Outbox, RoomEncryptor
from surfaces.delivery.typing_lease import TypingLease

__all__ = ["TXN_REF", "BindingMirror", "Notifier", "Outbox", "RoomEncryptor", "TypingLease"]
