"""Agent Markdown -> sanitised ``org.matrix.custom.html``.

Two layers, on purpose:

1. markdown-it-py (CommonMark + tables + strikethrough) with ``html=False``: raw HTML
   written by the agent (a model that can be prompt-injected) is *escaped* into
   visible text, never passed through. Its link validator already refuses
   ``javascript:``/``vbscript:``/``file:``/``data:`` links.
2. nh3 (ammonia) with an allow-list taken from the Matrix spec's recommended tags
   and attributes, as a backstop: whatever the renderer emits, only those tags,
   attributes and URL schemes reach the room.

``breaks=True`` turns single newlines into ``<br>``, as Element's composer does: chat
users (and models) expect a newline to be a line break. Linkify is off (it would need
``linkify-it-py``); Matrix clients linkify bare URLs in the event themselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["ALLOWED_TAGS", "ALLOWED_URL_SCHEMES", "render_markdown"]

#: Matrix spec "recommended HTML tags" minus ``img`` (it may only point at ``mxc://``
#: media, which agent links never do) plus ``s`` (the modern spelling of ``strike``).
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "font", "del", "s", "strike", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "p", "a", "ul", "ol", "sup", "sub", "li", "b", "i", "u", "strong", "em", "code",
        "hr", "br", "div", "table", "thead", "tbody", "tr", "th", "td", "caption", "pre",
        "span", "details", "summary",
    }
)  # fmt: skip

#: Link schemes the Matrix spec allows on ``<a href>`` plus ``matrix:`` URIs.
ALLOWED_URL_SCHEMES: frozenset[str] = frozenset(
    {"http", "https", "ftp", "mailto", "magnet", "matrix"}
)

_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(),  # no generic attributes (ammonia would allow lang/title everywhere)
    "a": {"href"},
    "ol": {"start"},
    "code": {"class"},  # only ``language-*`` survives, see _filter_attribute
}

_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,64}")

# Inline tokens that carry no markup: a paragraph made only of these renders to the
# same thing the plain ``body`` already shows.
_PLAIN_INLINE = frozenset({"text", "softbreak"})

# For ``_surely_plain``: characters that may start inline Markdown anywhere in a line
# (emphasis, code, links, images, autolinks, entities, escapes, strikethrough,
# tables) or that the parser rewrites (tab, CR, NUL) ...
_INLINE_MARKUP = re.compile(r"[\\`*_\[\]<>&~|\t\r\x00]")
# ... and line starts that may open a block (heading, quote, list item, thematic
# break, setext underline) or an ordered list.
_BLOCK_MARKUP = re.compile(r"^(?:[#>+=-]|[0-9]{1,9}[.)])", re.MULTILINE)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep ``class`` on ``<code>`` only as ``language-*`` (clients use it to highlight)."""
    if tag == "code" and attribute == "class":
        kept = [c for c in value.split() if _LANGUAGE_CLASS.fullmatch(c)]
        return " ".join(kept) if kept else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes=_ALLOWED_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    url_schemes=set(ALLOWED_URL_SCHEMES),
    # Relative links point nowhere in a chat client.
    url_relative="deny",
    # ``rel`` is not in the Matrix allow-list; clients add their own.
    link_rel=None,
    strip_comments=True,
)


def _render_image_as_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """``![alt](url)`` becomes a link: Matrix ``<img>`` may only reference ``mxc://``."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt)}</a>'


def _render_tag(tag: str) -> Any:
    def rule(
        self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return tag

    return rule


def _make_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image_as_link)
    # ``~~x~~`` -> <del>: in every version of the Matrix allow-list (``s`` is newer).
    md.add_render_rule("s_open", _render_tag("<del>"))
    md.add_render_rule("s_close", _render_tag("</del>"))
    return md


_MD = _make_parser()


def _is_plain(tokens: Sequence[Token], text: str) -> bool:
    """True when the document is one paragraph of unformatted text equal to ``text``."""
    if not tokens:
        return True
    if [t.type for t in tokens] != ["paragraph_open", "inline", "paragraph_close"]:
        return False
    children = tokens[1].children or []
    if any(child.type not in _PLAIN_INLINE for child in children):
        return False
    # Escapes (``\*``) and entities (``&amp;``) change the text: then HTML differs.
    shown = "".join("\n" if c.type == "softbreak" else c.content for c in children)
    return shown == text.strip()


def _surely_plain(text: str) -> bool:
    """True when ``text`` cannot contain Markdown: no markup character, no line
    that could open a block, one paragraph (no blank line), no line with space at
    either end (the parser trims it, so the HTML would differ from ``body``).

    The usual chat reply passes this test, and then parsing is skipped: it costs
    about 16 µs per line with markdown-it-py (1.6 ms for a 100-line reply, on every
    edit of a streamed one). False says nothing: the parser decides. A property test
    checks that whenever this says True, the parser agrees (``render`` → None).
    """
    body = text.strip(" \n")  # what the parser trims around the document
    if body != body.strip() or _INLINE_MARKUP.search(body) or _BLOCK_MARKUP.search(body):
        return False
    return all(line and line == line.strip() for line in body.split("\n"))


def render_markdown(text: str) -> str | None:
    """Render agent Markdown to sanitised Matrix HTML, or ``None`` if it adds nothing.

    ``None`` means "send only ``body``": a plain sentence rendered as ``<p>…</p>``
    carries no extra information, costs event bytes and makes some clients show
    the message differently. Partial Markdown from a stream in progress is fine: an
    unclosed code fence runs to the end of the text, an unclosed ``**`` stays literal.

    >>> render_markdown("**hi** <script>")
    '<p><strong>hi</strong> &lt;script&gt;</p>\\n'
    >>> render_markdown("just text") is None
    True
    """
    if _surely_plain(text):
        return None
    tokens = _MD.parse(text)
    if _is_plain(tokens, text):
        return None
    html = _MD.renderer.render(tokens, _MD.options, {})
    return _CLEANER.clean(html)
