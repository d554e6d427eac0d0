"""When a streamed reply may be edited: the edit throttle as a pure, clock-free object.

Why a schedule at all: every edit is an event the homeserver rate-limits and every
client re-renders, so edits start fast (the user sees the reply come alive) and slow
down as the reply gets long, with a hard cap per message. The caller passes the
current time (``trio.current_time()``) into every method, so tests drive the schedule
with plain numbers and the turn runner with ``autojump_clock``.

Schedule (defaults, times relative to the message being sent, text flowing steadily):

=====  ========  =========================================
edit   at (s)    gap before it (s)
=====  ========  =========================================
1      0.8       ``first_edit_after_s``
2      1.8       1.0    = min_interval_s · 1.5⁰
3      3.3       1.5    = · 1.5¹
4      5.55      2.25   = · 1.5²
5      8.925     3.375  = · 1.5³
6      13.925    5.0    (5.0625 capped at ``max_interval_s``)
k≥6    8.925 + 5·(k−5)   … edit 30 at 133.925, then no more
=====  ========  =========================================

The gap after the *n*-th edit is ``min(max_interval_s, min_interval_s · 1.5**(n-1))``.

Idle flush: when the agent pauses (a tool call, thinking) pending text should not
wait out a long interval. Once no frame has arrived for ``idle_flush_s``, the gap
relaxes to ``min_interval_s``: an edit is due at
``max(last_frame + idle_flush_s, last_edit + min_interval_s)`` (never before the
first-edit delay).

Cap: after ``max_edits`` intermediate edits, none are due. The *final* edit (the
complete text at the end of the turn) is always allowed and not counted: pass
``final=True`` to :meth:`EditThrottle.record_edit`. When a reply overflows into a new
message, call :meth:`EditThrottle.message_sent` again: each message has its own cap.

Usage in the streamer::

    throttle.message_sent(now)                # first text posted as a message
    throttle.frame_received(now)              # on every text chunk
    if throttle.should_edit(now, pending):    # on every chunk and on wake-up
        ...send edit...; throttle.record_edit(now)
    wake = throttle.due_at(pending)           # sleep until then if no chunk comes
"""

from __future__ import annotations

import math

import attrs

__all__ = ["EditThrottle"]

_GROWTH = 1.5


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.define
class EditThrottle:
    """Edit schedule for one streamed message; see the module docstring for numbers."""

    first_edit_after_s: float = attrs.field(default=0.8, validator=_non_negative)
    min_interval_s: float = attrs.field(default=1.0, validator=_non_negative)
    max_interval_s: float = attrs.field(default=5.0, validator=_non_negative)
    max_edits: int = attrs.field(default=30, validator=_non_negative)
    idle_flush_s: float = attrs.field(default=2.0, validator=_non_negative)

    _sent_at: float | None = attrs.field(default=None, init=False)
    _last_edit_at: float | None = attrs.field(default=None, init=False)
    _last_frame_at: float | None = attrs.field(default=None, init=False)
    _edits_done: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if self.max_interval_s < self.min_interval_s:
            raise ValueError(
                f"max_interval_s ({self.max_interval_s}) < min_interval_s ({self.min_interval_s})"
            )

    # -- schedule (pure) ---------------------------------------------------------

    def interval_after(self, edits_done: int) -> float:
        """Gap required after the ``edits_done``-th edit (``edits_done >= 1``)."""
        if edits_done < 1:
            return self.first_edit_after_s
        grown = self.min_interval_s * _GROWTH ** min(edits_done - 1, 64)
        return min(self.max_interval_s, grown)

    # -- state ---------------------------------------------------------------------

    @property
    def edits_done(self) -> int:
        """Intermediate edits recorded for the current message."""
        return self._edits_done

    @property
    def edits_left(self) -> int:
        """Intermediate edits still allowed for the current message."""
        return max(0, self.max_edits - self._edits_done)

    def message_sent(self, now: float) -> None:
        """Start the schedule for a newly posted message (also resets the cap)."""
        self._sent_at = now
        self._last_edit_at = None
        self._last_frame_at = now
        self._edits_done = 0

    def frame_received(self, now: float) -> None:
        """Note that text arrived: it postpones the idle flush."""
        self._last_frame_at = now

    def record_edit(self, now: float, *, final: bool = False) -> None:
        """Note that an edit was sent. ``final=True`` is free: it is not counted."""
        if final:
            return
        self._last_edit_at = now
        self._edits_done += 1

    # -- decisions -----------------------------------------------------------------

    def next_edit_at(self) -> float | None:
        """Earliest time the regular schedule allows the next intermediate edit.

        ``None`` before :meth:`message_sent` and once the cap is reached.
        """
        if self._sent_at is None or self.edits_left == 0:
            return None
        if self._last_edit_at is None:
            return self._sent_at + self.first_edit_after_s
        return self._last_edit_at + self.interval_after(self._edits_done)

    def due_at(self, pending_chars: int) -> float | None:
        """When an edit becomes due if no more text arrives; ``None`` if it never does."""
        regular = self.next_edit_at()
        if regular is None or pending_chars <= 0:
            return None
        assert self._sent_at is not None
        assert self._last_frame_at is not None
        fastest = (
            self._sent_at + self.first_edit_after_s
            if self._last_edit_at is None
            else self._last_edit_at + self.min_interval_s
        )
        idle = max(self._last_frame_at + self.idle_flush_s, fastest)
        return min(regular, idle)

    def should_edit(self, now: float, pending_chars: int) -> bool:
        """True if an intermediate edit with ``pending_chars`` new characters is due now."""
        due = self.due_at(pending_chars)
        return due is not None and now >= due
