"""An agent's presence in the words users read: its state and "last seen", relative
and human ("just now", "3 minutes ago" / «был на связи 3 минуты назад»)."""

from __future__ import annotations

from surfaces.agents import PresenceState
from surfaces.i18n import Texts

_MINUTE, _HOUR, _DAY = 60, 3600, 86400
_STATE_KEYS = {
    PresenceState.ONLINE: "presence_online",
    PresenceState.AWAY: "presence_away",
    PresenceState.OFFLINE: "presence_offline",
    PresenceState.UNKNOWN: "presence_unknown",
}


def seen_words(texts: Texts, seconds_ago: float | None) -> str:
    """``seconds_ago`` (None: never seen) as the catalogue's relative "last seen"."""
    if seconds_ago is None:
        return texts("seen_never")
    ago = max(0, int(seconds_ago))
    if ago < _MINUTE:
        return texts("seen_now")
    if ago < _HOUR:
        return texts("seen_minutes", n=ago // _MINUTE)
    if ago < _DAY:
        return texts("seen_hours", n=ago // _HOUR)
    return texts("seen_days", n=ago // _DAY)


def presence_words(texts: Texts, state: PresenceState, seen_ago: float | None) -> str:
    """ "online, last seen just now" for ``!status``."""
    return texts(
        "status_presence", state=texts(_STATE_KEYS[state]), seen=seen_words(texts, seen_ago)
    )
