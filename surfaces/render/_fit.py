"""Fitting a text the bot writes into a bounded number of events, with a visible mark
where it was cut.

Two rules, applied in this order by the callers (``surfaces.delivery.Notifier``):

1. A field someone else wrote (an agent's question or error code, a path it named) is
   cut to a bound of its own first, with ``clip`` — so one field cannot crowd out the
   rest of the text, and the user sees ``… (truncated)`` where it was cut.
2. The whole text is split into parts of at most ``budget_bytes`` (``split_reply``),
   at most ``max_parts`` of them; what does not fit those is dropped and the last part
   ends with ``…`` and the mark.

Both are pure and cheap: the text is cut to ``max_parts × budget_bytes`` characters
before it is split (no part can hold more characters than bytes), so a huge input
costs no more than the parts that are kept.
"""

from __future__ import annotations

from ._split import MAX_CHAR_COST, json_size, split_reply

__all__ = ["clip", "fit_parts"]

ELLIPSIS = "…"


def clip(text: str, max_chars: int, mark: str) -> str:
    """``text`` cut to ``max_chars`` characters, ending ``… mark`` if it was cut.

    >>> clip("abcdef", 3, "(cut)")
    'abc… (cut)'
    """
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()}{ELLIPSIS} {mark}"


def fit_parts(text: str, budget_bytes: int, *, max_parts: int, mark: str) -> list[str]:
    """``split_reply(text, budget_bytes)`` kept to ``max_parts`` parts; if anything was
    dropped, the last part kept ends with ``…`` and ``mark`` (on a line of its own).

    >>> fit_parts("one two three four five six", 12, max_parts=2, mark="!")
    ['one two', 'three…\\n!']
    """
    if max_parts < 1:
        raise ValueError(f"max_parts must be at least 1, got {max_parts}")
    window = max_parts * budget_bytes
    cut = len(text) > window
    parts = split_reply(text[:window] if cut else text, budget_bytes)
    if not cut and len(parts) <= max_parts:
        return parts
    kept = parts[:max_parts]
    ending = f"{ELLIPSIS}\n{mark}"
    room = budget_bytes - json_size(ending)
    if room < MAX_CHAR_COST:  # a budget smaller than the mark: the mark alone
        return [*kept[:-1], split_reply(ending, budget_bytes)[0]]
    last = kept[-1]
    if json_size(last) > room:
        last = split_reply(last, room, balance_fences=False)[0]
    kept[-1] = last + ending
    return kept
