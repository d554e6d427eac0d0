"""``ReplySplitter``: ``split_reply`` for a reply that grows while it streams.

Re-splitting the whole accumulated reply at every flush costs work proportional to the
reply's length each time (4 M characters stalled every room for about a second). The
splitter keeps the parts that can no longer change and splits only the tail, in bounded
steps, and returns exactly the parts ``split_reply`` would (property-tested). The
cutting rules themselves are ``_split``'s; see "Streaming" in its docstring.
"""

from __future__ import annotations

import collections
import itertools

import attrs

from surfaces.render._split import (
    _CLOSED,
    MAX_CHAR_COST,
    PART_BUDGET_BYTES,
    STEP_CHARS,
    _cost,
    _cut_parts,
    _Fences,
    _rstrip_end,
    _skip_blank_lines,
    _State,
    json_size,
    split_reply,
)


@attrs.define
class ReplySplitter:
    """``split_reply`` for a text that grows: finished parts are kept, only the tail is
    split again (see "Streaming" in the module docstring).

    ``feed`` only queues text; ``step`` takes in at most ``STEP_CHARS`` of it and
    finishes what it can; ``parts`` (and ``parts_with``) take in the rest and return
    every part of the text so far, exactly as ``split_reply`` would.

    >>> s = ReplySplitter(8)
    >>> s.feed("one two "); s.feed("three")
    >>> s.parts()
    ['one two', 'three']
    """

    budget_bytes: int = PART_BUDGET_BYTES
    balance_fences: bool = True
    #: Parts that no later text can change, in order.
    finished: list[str] = attrs.field(factory=list)
    # The tail: from the start of the line the first unfinished part begins on (when
    # that line may still turn into a fence line), else from that part's start.
    _buf: str = ""
    _cum: list[int] = attrs.field(factory=lambda: [0])  # cost of _buf[:i] (+ a constant)
    _pos: int = 0  # the first unfinished part's start in _buf
    _prefix: str = ""  # the reopened fence line it begins with
    _state: _State = _CLOSED  # fence state before _buf's first line
    _first_after: _State | None = None  # ... and after it, when it began before _buf
    _end: int = 0  # _buf index after its last visible character
    _queue: collections.deque[str] = attrs.field(factory=collections.deque)
    _queue_head: int = 0  # characters of _queue[0] already taken in

    def __attrs_post_init__(self) -> None:
        if self.budget_bytes < MAX_CHAR_COST:
            raise ValueError(f"budget_bytes must be >= {MAX_CHAR_COST}, got {self.budget_bytes}")

    def feed(self, text: str) -> None:
        """Queue more text (constant time; ``step`` does the work)."""
        if text:
            self._queue.append(text)

    @property
    def backlog(self) -> bool:
        """Whether fed text is still waiting to be taken in."""
        return bool(self._queue)

    def step(self, max_chars: int = STEP_CHARS) -> bool:
        """Take in up to ``max_chars`` of the fed text and finish the parts that are
        final. Returns whether fed text is still waiting."""
        taken: list[str] = []
        room = max_chars
        while self._queue and room > 0:
            head = self._queue[0]
            piece = head[self._queue_head : self._queue_head + room]
            taken.append(piece)
            room -= len(piece)
            self._queue_head += len(piece)
            if self._queue_head >= len(head):
                self._queue.popleft()
                self._queue_head = 0
        if taken:
            piece = "".join(taken)
            self._take(piece)
            self._finish()
        return self.backlog

    def parts(self) -> list[str]:
        """Every part of the text fed so far (``split_reply`` of it)."""
        self._drain()
        return [*self.finished, *self._tail(self._buf, self._cum, self._end)]

    def parts_with(self, extra: str) -> list[str]:
        """The parts of the text so far, without its trailing whitespace, followed by
        a blank line and ``extra`` (a progress line, an "interrupted" mark):
        ``split_reply(f"{text.rstrip()}\\n\\n{extra}")``, or of ``extra`` alone when
        there is no text yet."""
        self._drain()
        if not self.finished and _skip_blank_lines(self._buf, self._pos) >= self._end:
            return split_reply(extra, self.budget_bytes, balance_fences=self.balance_fences)
        end = self._end
        joined = f"{self._buf[:end]}\n\n{extra}"
        cum = self._cum[: end + 1]
        added = itertools.accumulate(map(_cost, joined[end:]), initial=cum[-1])
        next(added)
        cum.extend(added)
        end_all = _rstrip_end(joined, end, len(joined))
        return [*self.finished, *self._tail(joined, cum, end_all)]

    # ---- inside ------------------------------------------------------------

    def _drain(self) -> None:
        while self.step():
            pass

    def _take(self, piece: str) -> None:
        start = len(self._buf)
        self._buf += piece
        it = itertools.accumulate(map(_cost, piece), initial=self._cum[-1])
        next(it)
        self._cum.extend(it)
        visible = len(piece.rstrip())
        if visible:
            self._end = start + visible

    def _fences(self, text: str) -> _Fences | None:
        if not self.balance_fences:
            return None
        return _Fences(text, self._state, self._first_after)

    def _single(self, text: str, cum: list[int], pos: int, end_all: int) -> str | None:
        """The tail as its one (last) part when it fits in one; ``_cut_parts`` would
        give the same, but this needs no fence scan."""
        prefix = self._prefix
        avail = self.budget_bytes - json_size(prefix)
        if avail < MAX_CHAR_COST:
            prefix, avail = "", self.budget_bytes
        if cum[end_all] - cum[pos] <= avail:
            return prefix + text[pos:end_all]
        return None

    def _tail(self, text: str, cum: list[int], end_all: int) -> list[str]:
        pos = _skip_blank_lines(text, self._pos)
        if pos >= end_all:
            return []
        single = self._single(text, cum, pos, end_all)
        if single is not None:
            return [single]
        parts = _cut_parts(
            text, cum, self._fences(text), pos, end_all, self.budget_bytes, self._prefix
        )
        return [p.body for p in parts]

    def _finish(self) -> None:
        """Move the final parts at the tail's start to ``finished``."""
        buf = self._buf
        pos = _skip_blank_lines(buf, self._pos)
        if pos >= self._end or self._single(buf, self._cum, pos, self._end) is not None:
            return  # the tail is (at most) one part: the last one is never final
        fences = self._fences(buf)
        done = 0
        prefix = self._prefix
        for part in _cut_parts(buf, self._cum, fences, pos, self._end, self.budget_bytes, prefix):
            if not part.final:
                break
            self.finished.append(part.body)
            done += 1
            pos, prefix = part.next_pos, part.next_prefix
        if done:
            self._rebase(pos, prefix, fences)

    def _rebase(self, pos: int, prefix: str, fences: _Fences | None) -> None:
        """Drop the finished text: the tail now starts at ``pos``."""
        start, state, first_after = pos, _CLOSED, None
        if fences is not None:
            line = fences.line_of(pos)
            state = fences.before(line)
            if line == 0 and self._first_after is not None:
                first_after = self._first_after  # that line began before the tail
            elif fences.line_starts[line] == pos:
                pass  # the part starts a line: the new tail starts with it
            elif line < len(fences.after) - 1 or fences.last_settled:
                first_after = fences.after[line]  # mid-line, the line's effect is known
            else:
                start = fences.line_starts[line]  # keep the line: it may become a fence
        self._buf = self._buf[start:]
        del self._cum[:start]
        self._pos = pos - start
        self._end -= start
        self._prefix = prefix
        self._state, self._first_after = state, first_after
