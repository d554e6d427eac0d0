"""Noticing an agent that restarted: the ``boot_id`` of its ``STATUS`` (a project
extension, docs/agent-protocol.md "The agent's process identity") as each chat last saw
it, and one offer of ``!restore`` when it changes.

The ``boot_id`` a chat saw is stored with the turn's final sends (``finish_event``'s
``values``), and the offer is one of those sends: a crash before that transaction
leaves neither, a crash after it leaves both — the offer is made once per new
``boot_id``, across bot restarts too. A priming turn (``!load``/``!restore``) stores
the new ``boot_id`` and offers nothing.
"""

from __future__ import annotations

import attrs
import structlog

from surfaces.delivery import Notifier
from surfaces.i18n import Texts
from surfaces.metrics import Metrics
from surfaces.state import ChatRecord, PendingSend, Store

log = structlog.get_logger(__name__)

#: The chat's last seen agent ``boot_id`` (kv key prefix + room id).
BOOT_KEY = "agent_boot."
#: Rooms whose last seen ``boot_id`` is kept in memory (the store holds them all).
BOOT_CACHE_SIZE = 10_000


@attrs.define
class AgentRestarts:
    store: Store
    notifier: Notifier
    texts: Texts
    metrics: Metrics | None = None
    #: room id → the ``boot_id`` stored for it (saves the store a read per turn).
    _boots: dict[str, str] = attrs.field(factory=dict, init=False)

    async def seen(
        self,
        chat: ChatRecord,
        boot_id: str | None,
        *,
        event_id: str,
        relation: dict | None,
        sends: list[PendingSend],
        priming: bool,
    ) -> dict[str, str]:
        """The kv rows to store with the turn (``{}``: nothing changed); appends the
        offer of ``!restore`` to ``sends`` when the agent restarted and the chat has a
        transcript to restore."""
        if boot_id is None or self._boots.get(chat.room_id) == boot_id:
            return {}
        key = BOOT_KEY + chat.room_id
        previous = await self.store.get_value(key)
        if previous == boot_id:
            self.remember(chat.room_id, boot_id)
            return {}
        if previous is not None and not priming and await self.store.has_transcript(chat.room_id):
            log.info("agent_restart_noticed", previous=previous, boot_id=boot_id)
            sends.append(
                self.notifier.pending(
                    chat.room_id,
                    self.texts("restore_offer"),
                    txn_id=f"{event_id}.restore",
                    relation=relation,
                )
            )
            if self.metrics:
                self.metrics.restore_offered()
        return {key: boot_id}

    def remember(self, room_id: str, boot_id: str) -> None:
        """Once stored (after the turn's final transaction)."""
        if len(self._boots) >= BOOT_CACHE_SIZE and room_id not in self._boots:
            self._boots.clear()  # bounded; the store answers the next lookups
        self._boots[room_id] = boot_id
