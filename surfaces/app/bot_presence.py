"""The bot's own Matrix presence follows its agents, so a user sees at a glance in
their client whether their messages will be answered:

* ``online`` when every registry agent is online;
* ``unavailable`` with a ``status_msg`` naming the problem (``agent-0 offline``,
  ``agent-0 offline, agent-1 away``) when any is not;
* ``offline`` on shutdown (shielded, a few seconds at most, inside the grace period).

It is set only when that summary changes (not once per probe), and not before every
agent has been probed once (``unknown`` is not news). A homeserver that refuses
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

    async def run(self) -> None:
        delay = RETRY_BASE_S
        while not self.disabled:
            version = self.board.version
            wanted = wanted_presence(self.board.states())
            if wanted is not None and wanted != self.published:
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
                    continue
                delay = RETRY_BASE_S
            await self.board.wait_changed(version)

    async def go_offline(self) -> None:
        """``offline`` on shutdown (best effort, bounded, shielded from the stop)."""
        if self.disabled or self.published is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(OFFLINE_AT_SHUTDOWN_S):
            try:
                await self.matrix.set_presence(Presence.OFFLINE)
                self.published = (Presence.OFFLINE, None)
                log.info("bot_presence_set", presence=Presence.OFFLINE.value)
            except (MatrixError, TransportError) as exc:
                log.info("bot_presence_offline_failed", error=repr(exc))

    async def _publish(self, wanted: _Wanted) -> None:
        presence, status_msg = wanted
        # An empty status_msg clears the problem text once everything is back.
        await self.matrix.set_presence(presence, status_msg or "")
        if not self._checked:
            self._checked = True
            seen = await self.matrix.get_presence(self.own_user_id)
            if seen.presence is Presence.OFFLINE:
                self._disable("the homeserver keeps no presence (read back offline)")
                return
        self.published = wanted
        log.info("bot_presence_set", presence=presence.value, status_msg=status_msg)

    def _disable(self, reason: str) -> None:
        self.disabled = True
        log.info("bot_presence_disabled", reason=reason)
