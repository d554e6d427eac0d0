import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surfaces.render import ALLOWED_TAGS, render_markdown


def test_plain_text_returns_none():
    assert render_markdown("Привет! How are you?") is None
    assert render_markdown("line one\nline two") is None
    assert render_markdown("  padded  ") is None
    assert render_markdown("") is None
    assert render_markdown("   \n ") is None
    assert render_markdown("see https://example.org/x") is None  # no linkify


def test_escapes_and_entities_are_not_plain():
    # The HTML shows "*" / "&" while the body shows the Markdown source.
    assert render_markdown(r"2 \* 3") == "<p>2 * 3</p>\n"
    assert render_markdown("a &amp; b") == "<p>a &amp; b</p>\n"


def test_headings():
    assert render_markdown("# Title\n\n### Sub") == "<h1>Title</h1>\n<h3>Sub</h3>\n"


def test_emphasis_strike_inline_code():
    html = render_markdown("**b** _i_ ~~gone~~ `x<y`")
    assert html == "<p><strong>b</strong> <em>i</em> <del>gone</del> <code>x&lt;y</code></p>\n"


def test_lists():
    assert render_markdown("- a\n- b") == "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
    assert render_markdown("3. c\n4. d") == '<ol start="3">\n<li>c</li>\n<li>d</li>\n</ol>\n'


def test_single_newline_is_a_line_break():
    assert render_markdown("**a**\nb") == "<p><strong>a</strong><br>\nb</p>\n"


def test_code_fence_with_language():
    html = render_markdown("```python\nif a < b:\n    pass\n```")
    assert html == '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>\n'


def test_unclosed_code_fence_mid_stream():
    html = render_markdown("Here:\n\n```js\nconst x = 1;\nconst")
    assert html == (
        '<p>Here:</p>\n<pre><code class="language-js">const x = 1;\nconst</code></pre>\n'
    )


def test_partial_emphasis_mid_stream_stays_literal():
    assert render_markdown("this is **bol") is None


def test_hostile_code_class_dropped():
    html = render_markdown('```x" onmouseover="alert(1)\ncode\n```')
    assert html == "<pre><code>code\n</code></pre>\n"


def test_table():
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |")
    assert html is not None
    assert "<table>" in html
    assert "<th>a</th>" in html
    assert "<td>1</td>" in html
    assert "style" not in html  # alignment styles are not in the allow-list
    assert "<td>2</td>" in html


def test_links():
    assert (
        render_markdown("[docs](https://example.org/a?b=1&c=2)")
        == '<p><a href="https://example.org/a?b=1&amp;c=2">docs</a></p>\n'
    )
    assert (
        render_markdown("<mailto:me@example.org>")
        == '<p><a href="mailto:me@example.org">mailto:me@example.org</a></p>\n'
    )
    assert 'href="matrix:r/room:example.org"' in (
        render_markdown("[r](matrix:r/room:example.org)") or ""
    )


def test_link_title_and_rel_not_emitted():
    assert render_markdown('[a](https://x.org "t")') == '<p><a href="https://x.org">a</a></p>\n'


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](vbscript:msgbox)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
    ],
)
def test_dangerous_links_never_become_hrefs(source):
    html = render_markdown(source + " **!**") or ""
    assert "href" not in html
    assert "<a" not in html


def test_relative_links_lose_href():
    assert render_markdown("[a](../secret)") == "<p><a>a</a></p>\n"


def test_raw_html_is_escaped():
    html = render_markdown("<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>")
    assert html == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    )


def test_inline_raw_html_is_escaped():
    html = render_markdown('**hi** <b onclick="x">bold</b> <!-- c -->')
    assert html == (
        '<p><strong>hi</strong> &lt;b onclick="x"&gt;bold&lt;/b&gt; &lt;!-- c --&gt;</p>\n'
    )


def test_images_become_links():
    assert (
        render_markdown("![a cat](https://x.org/cat.png)")
        == '<p><a href="https://x.org/cat.png">a cat</a></p>\n'
    )
    assert (
        render_markdown("![](https://x.org/c.png)")
        == '<p><a href="https://x.org/c.png">https://x.org/c.png</a></p>\n'
    )
    assert "<img" not in (render_markdown("![x](javascript:alert(1)) **b**") or "")


def test_blockquote_and_rule():
    assert render_markdown("> q\n\n---") == "<blockquote>\n<p>q</p>\n</blockquote>\n<hr>\n"


_TAG = re.compile(r"<\s*/?\s*([a-zA-Z0-9]+)([^>]*)>")


@given(st.text(alphabet=st.sampled_from(list("<>&\"'`*_~[]()!#-|:/ \nabcjsrpt=01")), max_size=200))
def test_output_only_contains_allowed_markup(source):
    html = render_markdown(source)
    if html is None:
        return
    for tag, attrs in _TAG.findall(html):
        assert tag.lower() in ALLOWED_TAGS
        for name in re.findall(r"([a-zA-Z-]+)=", attrs):
            assert name in {"href", "start", "class"}
    assert "javascript:" not in html.lower().replace("&", "") or "href" not in html


# -- the plain-text fast path ---------------------------------------------------------

_MARKDOWNISH = st.text(
    alphabet=st.sampled_from(
        [
            *"ab1 9.)\n\t\r#>+=-*_`[]()<>&~|\\!:/",
            *("\u00a0", "\u2028", "\x85", "\x00", "\x0b", "\x0c", "\x1c", "\u3000", "я"),
        ]
    ),
    max_size=40,
)


@given(_MARKDOWNISH | st.text(max_size=40))
def test_fast_path_only_skips_what_the_parser_calls_plain(text: str) -> None:
    from surfaces.render._markdown import _MD, _is_plain, _surely_plain

    if _surely_plain(text):
        assert _is_plain(_MD.parse(text), text), text


def test_fast_path_takes_ordinary_replies_and_leaves_markup_to_the_parser() -> None:
    from surfaces.render._markdown import _surely_plain

    reply = "\n".join(f"chunk {i}/100 - ok, pi-1-2: done!" for i in range(100))
    assert _surely_plain(reply)
    assert _surely_plain("  Привет! Как дела?  ")
    for markup in ("a *b*", "x\n- item", "1. one", "t\n===", "a\n\nb", "a  \nb", "> q", "a &x;"):
        assert not _surely_plain(markup), markup
    # and the parser still renders what the fast path declined
    assert render_markdown("x\n- item") == "<p>x</p>\n<ul>\n<li>item</li>\n</ul>\n"
