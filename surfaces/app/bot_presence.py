"""The bot's own Matrix presence follows its agents, so a user sees at a glance in
their client whether their messages will be answered:

* ``online`` when every registry agent is online;
* ``unavailable`` with a ``status_msg`` naming the problem (``agent-0 offline``,
  ``agent-0 offline, agent-1 away``) when any is not;
* ``offline`` on shutdown (shielded, a few seconds at most, inside the grace period).

It is set only when that summary changes (not once per probe), and not before every
agent has been probed once (``unknown`` is not news). Two Synapse rules need care: every
``/sync`` sets the device's presence (``set_presence``, default ``online``), so the bot's
syncs carry the presence it set (``MatrixClient.sync_presence``); and every message the
bot sends counts as activity that turns ``unavailable`` back into ``online`` (keeping the
status message), so while it is ``unavailable`` the bot sets it again after its sends —
at most once per ``REASSERT_AFTER_S``, not once per send. A homeserver that refuses
presence (403 ``M_FORBIDDEN`` / 404 / ``M_UNRECOGNIZED``: ``PresenceDisabledError``) or
ignores it (Synapse with ``presence.enabled: false`` accepts the PUT and reads back
``offline``) gets one log line (``bot_presence_disabled``) and no more requests. Other
failures (network, 5xx beyond the client's own retries) are retried with capped
backoff, each attempt under a deadline.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError, Presence, PresenceDisabledError, TransportError
from surfaces.agents import PresenceBoard, PresenceState, problems

log = structlog.get_logger(__name__)

#: Deadline of one presence request (the client's retries included).
PRESENCE_REQUEST_S = 10.0
#: ``offline`` at shutdown: at most this long.
OFFLINE_AT_SHUTDOWN_S = 3.0
#: Longest ``status_msg`` (many agents down: the first ones, then "…").
MAX_STATUS_MSG_CHARS = 200
#: After the bot sent something while ``unavailable``: set it again this much later
#: (one request for a burst of sends).
REASSERT_AFTER_S = 2.0
RETRY_BASE_S = 1.0
RETRY_MAX_S = 60.0

_Wanted = tuple[Presence, str | None]


def wanted_presence(states: list[tuple[str, PresenceState]]) -> _Wanted | None:
    """The presence the agents call for; None while any is still unknown."""
    if any(state is PresenceState.UNKNOWN for _, state in states):
        return None
    down = problems(states)
    if not down:
        return Presence.ONLINE, None
    text = ", ".join(down)
    if len(text) > MAX_STATUS_MSG_CHARS:
        text = text[: MAX_STATUS_MSG_CHARS - 1].rstrip(", ") + "…"
    return Presence.UNAVAILABLE, text


@attrs.define
class BotPresence:
    """Run with ``nursery.start_soon(bot_presence.run)``; ``await go_offline()`` at
    shutdown."""

    matrix: MatrixClient
    board: PresenceBoard
    own_user_id: str
    disabled: bool = False
    published: _Wanted | None = None
    _checked: bool = False  # read back once: does the homeserver keep presence at all?
    _stale: bool = False  # a send may have turned our "unavailable" into "online"
    _touched: trio.Event = attrs.Factory(trio.Event)

    def touched(self) -> None:
        """The bot sent an event (the outbox's ``on_sent``): Synapse counts that as
        activity, which ends an ``unavailable``."""
        if self.published is not None and self.published[0] is Presence.UNAVAILABLE:
            self._stale = True
            self._touched.set()

    async def run(self) -> None:
        delay = RETRY_BASE_S
        while not self.disabled:
            version = self.board.version
            self._touched = trio.Event()
            wanted = wanted_presence(self.board.states())
            if wanted is not None and (wanted != self.published or self._stale):
                try:
                    with trio.fail_after(PRESENCE_REQUEST_S):
                        await self._publish(wanted)
                except PresenceDisabledError as exc:
                    self._disable(f"refused: {exc.status} {exc.errcode}")
                    return
                except (MatrixError, TransportError, trio.TooSlowError) as exc:
                    log.warning("bot_presence_failed", error=repr(exc), retry_in_s=delay)
                    await trio.sleep(delay)
                    delay = min(RETRY_MAX_S, delay * 2)
                    continue  # _stale stays: a failed re-assert is tried again
                self._stale = False
                delay = RETRY_BASE_S
            await self._next_reason(version)

    async def _next_reason(self, version: int) -> None:
        """Until the agents' summary changes, or a send needs a re-assert."""
        async with trio.open_nursery() as nursery:

            async def changed() -> None:
                await self.board.wait_changed(version)
                nursery.cancel_scope.cancel()

            async def touched() -> None:
                await self._touched.wait()
                await trio.sleep(REASSERT_AFTER_S)
                nursery.cancel_scope.cancel()

            nursery.start_soon(changed)
            nursery.start_soon(touched)

    async def go_offline(self) -> None:
        """``offline`` on shutdown (best effort, bounded, shielded from the stop)."""
        if self.disabled or self.published is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(OFFLINE_AT_SHUTDOWN_S):
            try:
                self.matrix.sync_presence = Presence.OFFLINE.value  # a last sync: no "online"
                await self.matrix.set_presence(Presence.OFFLINE)
                self.published = (Presence.OFFLINE, None)
                log.info("bot_presence_set", presence=Presence.OFFLINE.value)
            except (MatrixError, TransportError) as exc:
                log.info("bot_presence_offline_failed", error=repr(exc))

    async def _publish(self, wanted: _Wanted) -> None:
        presence, status_msg = wanted
        # An empty status_msg clears the problem text once everything is back.
        await self.matrix.set_presence(presence, status_msg or "")
        # Synapse sets the device's presence from each /sync (``set_presence``,
        # default online): the bot's syncs must say the same, or the next one would
        # undo an ``unavailable``.
        self.matrix.sync_presence = presence.value
        if not self._checked:
            self._checked = True
            seen = await self.matrix.get_presence(self.own_user_id)
            if seen.presence is Presence.OFFLINE:
                self.matrix.sync_presence = None
                self._disable("the homeserver keeps no presence (read back offline)")
                return
        self.published = wanted
        log.info("bot_presence_set", presence=presence.value, status_msg=status_msg)

    def _disable(self, reason: str) -> None:
        self.disabled = True
        log.info("bot_presence_disabled", reason=reason)
