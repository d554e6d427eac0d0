"""What a Matrix message says, as plain text for the agent: reply fallbacks stripped,
HTML-only messages converted, pills rendered as names, relations read.

Pure functions over event content (input like any other: every field is checked).
Element sends a reply with a quoted fallback in front of the user's words (``body``:
``> <@bot:…> …`` lines and a blank line; ``formatted_body``: ``<mx-reply>…</mx-reply>``);
the spec tells clients to strip it, and a command inside a reply only parses once it
is gone. ``body`` is preferred over the HTML: for what a user types it is the Markdown
source, which an agent reads best; the HTML is used when there is no usable ``body``.
"""

from __future__ import annotations

import html.parser
import re
from typing import Any
from urllib.parse import unquote

import attrs

from surfaces.core import clean_text, is_event_id

THREAD = "m.thread"
REPLACE = "m.replace"
ANNOTATION = "m.annotation"

#: The HTML reply fallback, always at the start (what matrix-react-sdk strips too).
_MX_REPLY = re.compile(r"^\s*<mx-reply>.*?</mx-reply>", re.DOTALL | re.IGNORECASE)
_PILL = re.compile(r"^https://matrix\.to/#/(?P<id>[@#!][^/?]+)")
_MATRIX_URI_USER = re.compile(r"^matrix:u/(?P<id>[^/?]+)")
_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "table", "tr", "h1", "h2", "h3", "h4", "h5"}
    | {"h6", "hr", "details", "summary"}
)
_SKIPPED = frozenset({"mx-reply", "script", "style"})
MAX_HTML_CHARS = 200_000


@attrs.frozen
class Relation:
    """``m.relates_to`` as far as the bot cares."""

    rel_type: str | None = None
    event_id: str | None = None  # the target of ``rel_type`` (thread root, edited event…)
    reply_to: str | None = None  # ``m.in_reply_to.event_id``
    falling_back: bool = False  # the reply is only a thread's fallback for old clients
    key: str | None = None  # an annotation's key (a reaction)

    @property
    def thread_root(self) -> str | None:
        return self.event_id if self.rel_type == THREAD else None

    @property
    def quoted(self) -> str | None:
        """The event the user really replied to (not a thread's fallback reply)."""
        if self.rel_type == THREAD and self.falling_back:
            return None
        return self.reply_to


def relation_of(content: Any) -> Relation:
    rel = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(rel, dict):
        return Relation()
    rel_type = rel.get("rel_type") if isinstance(rel.get("rel_type"), str) else None
    target = rel.get("event_id") if is_event_id(rel.get("event_id")) else None
    reply = rel.get("m.in_reply_to")
    reply_to = reply.get("event_id") if isinstance(reply, dict) else None
    key = rel.get("key")
    return Relation(
        rel_type=rel_type,
        event_id=target,
        reply_to=reply_to if is_event_id(reply_to) else None,
        falling_back=rel.get("is_falling_back") is True,
        key=key if isinstance(key, str) and 0 < len(key) <= 64 else None,
    )


def strip_reply_fallback(body: str) -> str:
    """Drop the leading ``> `` lines of a reply and the blank line after them."""
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i and i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:]) if i else body


def strip_html_reply(formatted: str) -> str:
    return _MX_REPLY.sub("", formatted, count=1)


def message_text(content: dict[str, Any], *, is_reply: bool) -> str:
    """The user's own words in a message content ("" when there are none).

    ``is_reply``: the message has ``m.in_reply_to``, so a quoted fallback may lead
    its ``body`` (only then are leading ``>`` lines a fallback, not the user's quote).
    """
    body = content.get("body")
    text = clean_text(body) if isinstance(body, str) else ""
    if is_reply:
        text = strip_reply_fallback(text)
    if text.strip():
        return text.strip("\n")
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        return html_to_text(strip_html_reply(clean_text(formatted[:MAX_HTML_CHARS])))
    return ""


def latest_content(event_content: Any, unsigned: Any) -> dict[str, Any]:
    """An event's content as its latest edit shows it: the server bundles the most
    recent replacement in ``unsigned["m.relations"]["m.replace"]`` (spec v1.7+)."""
    relations = unsigned.get("m.relations") if isinstance(unsigned, dict) else None
    replace = relations.get(REPLACE) if isinstance(relations, dict) else None
    content = replace.get("content") if isinstance(replace, dict) else None
    new = content.get("m.new_content") if isinstance(content, dict) else None
    if isinstance(new, dict):
        return new
    return event_content if isinstance(event_content, dict) else {}


def html_to_text(markup: str) -> str:
    """Plain text of Matrix HTML: block elements and ``<br>`` as line breaks, list
    items as ``- ``, pills (``https://matrix.to/#/@user:server``) as their text —
    the display name clients put there — or the id when that is empty, nothing
    inside ``<mx-reply>``. The tokenizer is the standard library's HTML parser (it
    copes with malformed markup, entities included), not a regular expression."""
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return parser.text()


class _TextParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0
        self._pill: str | None = None
        self._pill_text: list[str] = []

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._out.append("\n")
        elif tag in _BLOCKS:
            self._block()
        elif tag == "li":
            self._block()
            self._out.append("- ")
        elif tag == "a":
            href = unquote(dict(attrs_).get("href") or "")
            match = _PILL.match(href) or _MATRIX_URI_USER.match(href)
            if match:
                ident = match.group("id")
                self._pill = ident if ident[0] in "@#!" else f"@{ident}"
                self._pill_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag == "a" and self._pill is not None:
            shown = "".join(self._pill_text).strip()
            self._out.append(shown or self._pill)
            self._pill = None
        elif tag in _BLOCKS or tag == "li":
            self._block()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pill is not None:
            self._pill_text.append(data)
        else:
            self._out.append(data)

    def _block(self) -> None:
        if self._out and not "".join(self._out[-2:]).endswith("\n"):
            self._out.append("\n")

    def text(self) -> str:
        text = "".join(self._out)
        text = re.sub(r"[ \t]+\n", "\n", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()
