"""Split a long reply into parts that each fit one Matrix event, even as an edit.

Budget arithmetic (``PART_BUDGET_BYTES``)
-----------------------------------------
Homeservers reject events whose serialised PDU exceeds ``65_536`` bytes. A streamed
reply's last state is sent as an ``m.replace`` edit, which carries the text *twice*
(``body: "* " + text`` and ``m.new_content.body``) and the HTML twice as well::

    65_536  event limit (whole PDU: content + envelope)
  −  4_096  envelope: event/room/sender ids, auth/prev events, hashes, signatures,
            m.relates_to, msgtype/format keys, the "* " prefixes (real: ~1.5 KiB)
  = 61_440  for content
  ÷ 2     = 30_720  one copy of (plain + HTML)   — edit duplication
  ÷ 2     = 15_360  plain text alone              — HTML gets the other half

So a part's *plain text* may use ``15_360`` bytes, measured as UTF-8 of its JSON
string encoding (``"`` and ``\\`` take 2 bytes, ``\\n`` 2, other control characters 6).
The HTML half is an estimate: prose renders to about its own size, but text full of
``<`` or ``&`` can render larger. Callers must still check the final event size
(``matrix_client.event_size``) and, if it is over, send the part without
``formatted_body`` — never fail the reply.

Cutting rules
-------------
Greedy from the start, each part as full as the budget allows, cutting at the best
boundary in the part's second half: a blank line (paragraph), then a newline, then
any whitespace, then a hard cut between characters (never inside a surrogate pair,
combining sequence, emoji ZWJ/modifier sequence or flag). If no boundary exists in the
second half, the best boundary anywhere is used. The whitespace at a cut, whitespace-
only lines after it, leading blank lines of the text and trailing whitespace are
dropped; nothing else is. Indentation of the line after a cut is kept (code), unless
it is so wide that nothing visible would fit after it in a part.

Cuts depend only on the text up to one budget past the part's start, so while a reply
streams, earlier parts stop changing as soon as the text has grown past them.

Streaming (``ReplySplitter``)
-----------------------------
A reply that streams is split by a :class:`ReplySplitter`, which gives exactly the
parts ``split_reply`` gives for the text fed so far, but keeps the parts no later text
can change (*finished*) and splits only the tail after them. A part is finished when
the rest of the text already did not fit it (so its cut is fixed), the fence state at
its end is settled (the line it ends in is complete, or can no longer become a fence
line) and the next part's start is fixed (a visible character follows on its line).
Text is taken in at most ``STEP_CHARS`` at a time (:meth:`ReplySplitter.step`), so a
caller on an event loop can checkpoint between steps: the work of one step is bounded
by the step and the unfinished tail (about two parts), never by the whole reply.

Code fences (``balance_fences=True``): a part that ends inside a fenced code block
gets the fence closed (``\\n````…``) and the next part reopens it with the same
opening line, so each message renders as code on its own. Only top-level fences
(0-3 spaces of indent) are tracked, as in CommonMark, and a line longer than
``MAX_FENCE_LINE_CHARS`` (trailing whitespace aside) is never taken for a fence line:
so whether a line is one is known after its first thousand characters. The last part is never
decorated (an unclosed fence renders to the end anyway). A cut right before a closing
fence yields a part that starts with an empty reopened block; harmless, rare.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from typing import NamedTuple

from matrix_client import MAX_EVENT_BYTES

__all__ = [
    "MATRIX_EVENT_LIMIT_BYTES",
    "PART_BUDGET_BYTES",
    "STEP_CHARS",
    "json_size",
    "split_reply",
]

#: The homeserver's event limit, as the Matrix client defines it (one constant).
MATRIX_EVENT_LIMIT_BYTES = MAX_EVENT_BYTES
_ENVELOPE_RESERVE_BYTES = 4_096
#: Plain-text bytes per part: (65_536 − 4_096) // 2 (edit) // 2 (plain + HTML).
PART_BUDGET_BYTES = (MATRIX_EVENT_LIMIT_BYTES - _ENVELOPE_RESERVE_BYTES) // 2 // 2

#: The largest cost of one code point (a control character as ``\\u00XX``).
MAX_CHAR_COST = 6

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_BLANK_LINES = re.compile(r"(?:[^\S\n]*\n)*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
# What may still grow into a fence marker run: up to three spaces and up to two marks.
_FENCE_PREFIX = re.compile(r" {0,3}(?:`{0,2}|~{0,2})")
_FENCE_START = re.compile(r" {0,3}[`~]")
_VISIBLE_ON_LINE = re.compile(r"[^\S\n]*\S")
#: A longer line is never a fence line (bounds the look-ahead of a streaming split).
MAX_FENCE_LINE_CHARS = 1_000
#: Characters a :class:`ReplySplitter` takes in per step.
STEP_CHARS = 16_384
# Keep a reopened fence's info string short; a huge one would eat the next part.
_MAX_REOPEN_INFO = 64

_JSON_SHORT_ESCAPES = frozenset('"\\\b\f\n\r\t')


def _char_cost(ch: str) -> int:
    """UTF-8 bytes of ``ch`` inside a JSON string as a homeserver serialises it."""
    o = ord(ch)
    if ch in _JSON_SHORT_ESCAPES:
        return 2
    if o < 0x20 or 0xD800 <= o <= 0xDFFF or o in (0x2028, 0x2029):
        return 6  # \u00XX; lone surrogates and JS line separators escaped, conservatively
    if o < 0x80:
        return 1
    if o < 0x800:
        return 2
    if o < 0x10000:
        return 3
    return 4


class _Costs(dict[str, int]):
    """``_char_cost`` memoised for the Basic Multilingual Plane (at most 64 Ki entries):
    ``map(COSTS.__getitem__, text)`` runs in C for every character seen before."""

    def __missing__(self, ch: str) -> int:
        cost = _char_cost(ch)
        if ord(ch) < 0x10000:
            self[ch] = cost
        return cost


_COSTS = _Costs()
_cost = _COSTS.__getitem__


def json_size(text: str) -> int:
    """UTF-8 size of ``text`` as a JSON string body (without the quotes).

    >>> json_size('a"é\\n')
    7
    """
    return sum(map(_cost, text))


def _is_cluster_continuation(prev: str, ch: str) -> bool:
    """True if a cut between ``prev`` and ``ch`` would split what users see as one glyph."""
    o = ord(ch)
    if 0xDC00 <= o <= 0xDFFF and 0xD800 <= ord(prev) <= 0xDBFF:
        return True  # surrogate pair (only in strings decoded with surrogatepass)
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return True
    if o == 0x200D or ord(prev) == 0x200D:
        return True  # zero-width joiner sequences (👩‍💻)
    if 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF:
        return True  # variation selectors
    # Skin-tone modifiers, tag sequences (subdivision flags).
    return 0x1F3FB <= o <= 0x1F3FF or 0xE0020 <= o <= 0xE007F


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _hard_cut(text: str, start: int, limit: int) -> int:
    """The last safe cut position in ``(start, limit]``, or ``limit`` if there is none."""
    cut = limit
    while cut > start + 1 and _is_cluster_continuation(text[cut - 1], text[cut]):
        cut -= 1
    if cut > start + 1 and _is_regional_indicator(text[cut]):
        # Flags are pairs of regional indicators: cut before an even-length run end.
        run = 0
        while start + run < cut and _is_regional_indicator(text[cut - 1 - run]):
            run += 1
        if run % 2 == 1 and cut - 1 > start:
            cut -= 1
    if cut <= start or not text[start:cut].strip():
        return limit
    return cut


_State = tuple[str | None, str]  # (the open fence's opening line or None, its marker)
_CLOSED: _State = (None, "")


def _after_line(state: _State, line: str) -> _State:
    """The fence state after ``line`` (a whole line) given the state before it."""
    if _FENCE_START.match(line) is None:
        return state
    if len(line) > MAX_FENCE_LINE_CHARS and len(line.rstrip()) > MAX_FENCE_LINE_CHARS:
        return state
    m = _FENCE.match(line)
    if m is None:
        return state
    opener, marker = state
    if opener is None:
        if not (m.group(1)[0] == "`" and "`" in m.group(2)):
            return line.strip(), m.group(1)
    elif m.group(1)[0] == marker[0] and len(m.group(1)) >= len(marker) and not m.group(2).strip():
        return _CLOSED
    return state


def _line_settled(line: str) -> bool:
    """Whether more text on this (unfinished) line can no longer change its effect."""
    if _FENCE_PREFIX.fullmatch(line) is not None:
        return False  # "", "  ", "``": may still become a fence line
    if _FENCE.match(line) is None:
        return True  # "text", "    ```" (indented code), "`` x"
    return len(line.rstrip()) > MAX_FENCE_LINE_CHARS


class _Fences:
    """Which fenced code block (if any) is open after each line of the text.

    ``state`` is the state before the text's first line; ``first_after`` (when given)
    the state after it, known because that line began before this text (a streaming
    tail that starts mid-line)."""

    def __init__(
        self, text: str, state: _State = _CLOSED, first_after: _State | None = None
    ) -> None:
        self.initial = state
        self.line_starts: list[int] = []
        self.after: list[_State] = []
        pos = 0
        lines = text.split("\n")
        for index, line in enumerate(lines):
            self.line_starts.append(pos)
            pos += len(line) + 1
            if index == 0 and first_after is not None:
                state = first_after
            else:
                state = _after_line(state, line)
            self.after.append(state)
        self.last_settled = (len(lines) == 1 and first_after is not None) or _line_settled(
            lines[-1]
        )

    def line_of(self, index: int) -> int:
        """The line that holds the character at ``index``."""
        return bisect.bisect_right(self.line_starts, index) - 1

    def open_at(self, end: int) -> str | None:
        """The fence opener in force for a part whose text ends just before ``end``."""
        if end <= 0:
            return None
        return self.after[self.line_of(end - 1)][0]

    def settled_at(self, end: int) -> bool:
        """Whether ``open_at(end)`` can no longer change as text is appended."""
        line = self.line_of(end - 1)
        return line < len(self.after) - 1 or self.last_settled

    def before(self, line: int) -> _State:
        return self.after[line - 1] if line > 0 else self.initial


def _reopen_line(opener: str) -> str:
    marker = _FENCE.match(opener)
    assert marker is not None
    info = marker.group(2).strip()
    if len(info) > _MAX_REOPEN_INFO:
        info = ""
    return marker.group(1) + info


def _closer(opener: str) -> str:
    marker = _FENCE.match(opener)
    assert marker is not None
    return marker.group(1)


def _rstrip_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _choose_cut(text: str, cum: list[int], start: int, avail: int) -> tuple[int, int]:
    """Return ``(end, next_start)`` for a part starting at ``start`` with ``avail`` bytes.

    Precondition: the rest of the text does not fit and ``avail >= MAX_CHAR_COST``.
    Returns ``(start, start)`` when not even the first visible character fits after
    the line's indentation.
    """
    base = cum[start]
    # Largest ``limit`` with cost(text[start:limit]) <= avail.
    limit = bisect.bisect_right(cum, base + avail) - 1
    limit = max(limit, start + 1)
    first_visible = start
    while text[first_visible].isspace():
        first_visible += 1
    if limit <= first_visible:
        return start, start
    half = bisect.bisect_left(cum, base + avail // 2)

    def search(low: int) -> tuple[int, int] | None:
        low = max(low, first_visible + 1)
        window = text[low : limit + 1]
        # A separator may start at ``limit`` (its first char is dropped, not sent).
        paragraphs = list(_PARAGRAPH_BREAK.finditer(window))
        if paragraphs:
            m = paragraphs[-1]
            return low + m.start(), low + m.end()
        newline = window.rfind("\n")
        if newline >= 0:
            # The next line keeps its indentation (code, nested lists).
            return low + newline, low + newline + 1
        for i in range(len(window) - 1, -1, -1):
            if window[i].isspace():
                end = low + i + 1
                while end < len(text) and text[end].isspace() and text[end] != "\n":
                    end += 1  # the rest of a run of spaces
                return low + i, end
        return None

    found = search(half) or search(first_visible + 1)
    if found is None:
        cut = _hard_cut(text, start, limit)
        return cut, cut
    sep_start, sep_end = found
    return _rstrip_end(text, start, sep_start), sep_end


class _Part(NamedTuple):
    body: str
    next_pos: int  # where the next part starts (blank lines skipped)
    next_prefix: str  # the reopened fence line the next part starts with
    final: bool  # appending text can change neither this part nor where the next begins


def _cut_parts(
    text: str,
    cum: list[int],
    fences: _Fences | None,
    pos: int,
    end_all: int,
    budget_bytes: int,
    prefix: str = "",
) -> list[_Part]:
    """The parts of ``text[pos:end_all]``; ``cum[i]`` is the cost of ``text[:i]`` plus
    any constant; ``prefix`` opens the first part (a reopened fence)."""
    parts: list[_Part] = []
    settled_skip = True  # an indentation skip before this part depended on settled fences
    while pos < end_all:
        prefix_cost = json_size(prefix)
        avail = budget_bytes - prefix_cost
        if avail < MAX_CHAR_COST:  # a reopened fence that leaves no room: drop it
            prefix, avail = "", budget_bytes
        if cum[end_all] - cum[pos] <= avail:
            # The last part is never decorated: an unclosed fence renders to the end.
            parts.append(_Part(prefix + text[pos:end_all], end_all, "", False))
            break
        reserve = 0
        settled = settled_skip
        opener: str | None = None
        suffix = ""
        while True:
            end, next_start = _choose_cut(text, cum, pos, avail - reserve)
            if end == pos and reserve:  # closing the fence leaves no room: don't
                end, next_start = _choose_cut(text, cum, pos, avail)
                opener, suffix = None, ""
                break
            if end == pos:
                break
            opener = _closing(fences, end)
            if fences is not None:
                settled = settled and fences.settled_at(end)
            suffix = "\n" + _closer(opener) if opener else ""
            suffix_cost = json_size(suffix)
            if suffix_cost <= reserve or avail - suffix_cost < MAX_CHAR_COST:
                if suffix_cost > reserve:  # no room to close the fence: leave it open
                    suffix, opener = "", None
                break
            reserve = suffix_cost
        if end == pos:
            # Indentation so deep that nothing visible fits after it: drop it.
            while text[pos].isspace():
                pos += 1
            settled_skip = settled
            continue
        next_prefix = _reopen_line(opener) + "\n" if opener else ""
        next_pos = _skip_blank_lines(text, next_start)
        final = settled and _VISIBLE_ON_LINE.match(text, next_pos) is not None
        parts.append(_Part(prefix + text[pos:end] + suffix, next_pos, next_prefix, final))
        prefix, pos, settled_skip = next_prefix, next_pos, True
    return parts


def _costs_of(text: str, start: int = 0) -> list[int]:
    return list(itertools.accumulate(map(_cost, text), initial=start))


def split_reply(
    text: str, budget_bytes: int = PART_BUDGET_BYTES, *, balance_fences: bool = True
) -> list[str]:
    """Split ``text`` into non-empty parts of at most ``budget_bytes`` JSON-escaped bytes.

    Returns ``[]`` for empty or whitespace-only text, else one part when it fits
    (stripped of trailing whitespace and leading blank lines). Joining the parts with
    the dropped whitespace gives back the text — see the module docstring for the
    exact rules and for the fence markers added by ``balance_fences``.

    Raises:
        ValueError: ``budget_bytes`` below 6 (one code point may cost 6 bytes).

    >>> split_reply("one two three", 8)
    ['one two', 'three']
    """
    if budget_bytes < MAX_CHAR_COST:
        raise ValueError(f"budget_bytes must be >= {MAX_CHAR_COST}, got {budget_bytes}")
    if len(text) * MAX_CHAR_COST <= budget_bytes:
        # Fits whatever its characters cost: the common case, so skip the
        # per-character accounting.
        start, end = _skip_blank_lines(text, 0), _rstrip_end(text, 0, len(text))
        return [text[start:end]] if start < end else []
    cum = _costs_of(text)
    fences = _Fences(text) if balance_fences else None
    end_all = _rstrip_end(text, 0, len(text))  # trailing whitespace is never sent
    parts = _cut_parts(text, cum, fences, _skip_blank_lines(text, 0), end_all, budget_bytes)
    return [p.body for p in parts]


def _skip_blank_lines(text: str, pos: int) -> int:
    """Position after any whitespace-only lines at ``pos`` (indentation is kept)."""
    match = _BLANK_LINES.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _closing(fences: _Fences | None, end: int) -> str | None:
    return fences.open_at(end) if fences is not None else None
