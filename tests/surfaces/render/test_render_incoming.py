"""Incoming messages as plain text: reply fallbacks, HTML, pills, latest edits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from surfaces.render import html_to_text, latest_content, message_text, strip_reply_fallback


def test_reply_fallback_lines_and_the_blank_line_go():
    assert strip_reply_fallback("> <@a:x> q\n> more\n>\n\nmine\n> not a fallback") == (
        "mine\n> not a fallback"
    )
    assert strip_reply_fallback("no fallback") == "no fallback"
    assert strip_reply_fallback("> only a quote") == ""


def test_mx_reply_is_dropped_and_html_becomes_text():
    content = {
        "body": "",
        "format": "org.matrix.custom.html",
        "formatted_body": (
            "<mx-reply><blockquote><a href='https://matrix.to/#/!r/$e'>In reply to</a>"
            "</blockquote></mx-reply><h1>Title</h1><p>para <code>x&lt;y</code></p>"
            "<pre><code>a\nb</code></pre><a href='https://example.org'>link</a>"
        ),
    }
    assert message_text(content, is_reply=True) == "Title\npara x<y\na\nb\nlink"


def test_pills_render_as_names_or_ids():
    assert html_to_text('<a href="https://matrix.to/#/@bob:x">Bob</a>') == "Bob"
    assert html_to_text('<a href="https://matrix.to/#/@bob:x"> </a>!') == "@bob:x!"
    assert html_to_text('<a href="matrix:u/bob:x"></a>') == "@bob:x"
    assert html_to_text('<a href="https://matrix.to/#/#room:x">#room:x</a>') == "#room:x"


def test_latest_content_prefers_the_bundled_edit():
    unsigned = {"m.relations": {"m.replace": {"content": {"m.new_content": {"body": "new"}}}}}
    assert latest_content({"body": "old"}, unsigned) == {"body": "new"}
    assert latest_content({"body": "old"}, {}) == {"body": "old"}
    assert latest_content("junk", {"m.relations": "junk"}) == {}


@given(st.text(max_size=300))
def test_html_to_text_never_raises(markup):
    assert isinstance(html_to_text(markup), str)
