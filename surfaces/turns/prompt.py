"""What the agent reads: the user's words, a quote of the message they replied to, and
the messages of a burst merged into one turn — in the formats that
``docs/agent-protocol.md`` ("Text conventions") defines, the one place they are
written down.

A single message without a quote is passed as it is. The delimiters are tags an agent
(a language model) reads as structure; a closing tag inside the user's own text is
neutralised (``</quote>`` → ``<\\/quote>``), so quoted text — possibly another room
member's — cannot end its block and pose as the owner's words.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

#: A quote of the replied-to message is cut to this many characters (with "…").
MAX_QUOTE_CHARS = 1_000
#: A merged turn stops taking messages once their text would pass this.
MAX_PROMPT_CHARS = 64_000


@attrs.frozen
class Quote:
    sender: str  # "you" (the owner), "assistant" (the bot's reply) or a user id
    text: str


@attrs.frozen
class PromptMessage:
    """One user message as the agent sees it."""

    text: str  # the user's words ("" for a file without a caption)
    quote: Quote | None = None
    file: str | None = None  # workspace-relative path of the file it carried


def _guard(text: str) -> str:
    return text.replace("</quote", "<\\/quote").replace("</message", "<\\/message")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def quote_block(quote: Quote) -> str:
    text = quote.text.strip()
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return f'<quote from="{_attr(quote.sender)}">\n{_guard(text)}\n</quote>'


def _one(message: PromptMessage) -> str:
    text = _guard(message.text) if message.quote is not None else message.text
    if message.quote is None:
        return text
    return f"{quote_block(message.quote)}\n{text}" if text else quote_block(message.quote)


def prompt_text(messages: Sequence[PromptMessage]) -> str:
    """The ``USER_MESSAGE.text`` of a turn answering ``messages`` (in order)."""
    if len(messages) == 1:
        return _one(messages[0])  # its file, if any, is in the attachments
    blocks = []
    total = len(messages)
    for n, message in enumerate(messages, 1):
        file = f' file="{_attr(message.file)}"' if message.file else ""
        body = _one(message) if message.quote is not None else _guard(message.text)
        blocks.append(f'<message n="{n}" of="{total}"{file}>\n{body}\n</message>')
    return "\n\n".join(blocks)
