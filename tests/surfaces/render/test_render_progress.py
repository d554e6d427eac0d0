import pytest
from hypothesis import given
from hypothesis import strategies as st

from surfaces.render import MAX_PROGRESS_CHARS, progress_line


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "web_search"}, "🔧 web_search…"),
        ({"tool": "shell"}, "🔧 shell…"),
        ({"tool_name": "read_file", "args": {}}, "🔧 read_file…"),
        ({"function": {"name": "fetch", "arguments": "{}"}}, "🔧 fetch…"),
        ({"tool_call": {"tool": "grep"}}, "🔧 grep…"),
        ({"name": "  multi\nline\ttool  "}, "🔧 multi line tool…"),
    ],
)
def test_tool_name_shapes(data, expected):
    assert progress_line("AGENT_EVENT_TOOL_CALL_CHUNK", data) == expected


@pytest.mark.parametrize(
    "data", [{}, None, {"name": ""}, {"name": 5}, {"args": "x"}, {"name": " \n"}]
)
def test_fallback(data):
    assert progress_line("AGENT_EVENT_TOOL_RESULT", data) == "🔧 …"


def test_custom_update_text():
    assert (
        progress_line("AGENT_EVENT_CUSTOM_UPDATE", {"text": "Reading\nfiles"}) == "⏳ Reading files"
    )
    assert progress_line("AGENT_EVENT_CUSTOM_UPDATE", {"status": "thinking"}) == "⏳ thinking"


def test_tool_events_do_not_show_free_text():
    # A tool result's text may be long output: never show it as progress.
    assert progress_line("AGENT_EVENT_TOOL_RESULT", {"text": "secret output"}) == "🔧 …"


def test_long_name_truncated():
    line = progress_line("tool", {"name": "x" * 500})
    assert len(line) == MAX_PROGRESS_CHARS
    assert line.startswith("🔧 xxx")
    assert line.endswith("x…")


@given(
    kind=st.text(max_size=30),
    value=st.text(max_size=300),
    key=st.sampled_from(["name", "text", "tool", "status"]),
)
def test_always_one_short_line(kind, value, key):
    line = progress_line(kind, {key: value})
    assert 0 < len(line) <= MAX_PROGRESS_CHARS
    assert "\n" not in line
    assert line.isprintable()
