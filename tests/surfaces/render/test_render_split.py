import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surfaces.render import MATRIX_EVENT_LIMIT_BYTES, PART_BUDGET_BYTES, json_size, split_reply


def assert_lossless(text: str, parts: list[str]) -> None:
    """Each part is an exact slice of ``text``, in order, and only whitespace is left out."""
    pos = 0
    for part in parts:
        assert part.strip(), "empty part"
        assert part == part.rstrip()
        # Skip the dropped whitespace (the part itself may start with indentation).
        while not text.startswith(part, pos):
            assert text[pos].isspace(), f"non-whitespace dropped at {pos}: {text[pos]!r}"
            pos += 1
        pos += len(part)
    assert not text[pos:].strip()


def assert_within(parts: list[str], budget: int) -> None:
    for part in parts:
        assert json_size(part) <= budget


def test_budget_arithmetic():
    assert MATRIX_EVENT_LIMIT_BYTES == 65_536
    assert PART_BUDGET_BYTES == (65_536 - 4_096) // 2 // 2 == 15_360


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a"é\n', 7),
        ("\\", 2),
        ("\x01", 6),
        ("\t", 2),
        ("я", 2),
        ("€", 3),
        ("😀", 4),
        ("\u2028", 6),
    ],
)
def test_json_size(text, expected):
    assert json_size(text) == expected


def test_json_size_matches_json_dumps_for_common_text():
    text = 'Привет "мир" \\ \n\t 😀 ok'
    assert json_size(text) == len(json.dumps(text, ensure_ascii=False).encode()) - 2


def test_empty_and_blank():
    assert split_reply("", 100) == []
    assert split_reply(" \n\n\t ", 100) == []


def test_fits_in_one_part():
    assert split_reply("hello\n", 100) == ["hello"]
    assert split_reply("\n\n  indented\n", 100) == ["  indented"]


def test_paragraph_boundary_preferred():
    text = "First paragraph here.\nSecond line.\n\nNext paragraph."
    assert split_reply(text, 50) == ["First paragraph here.\nSecond line.", "Next paragraph."]


def test_line_boundary_when_no_paragraph():
    text = "line one is here\nline two is here\nline three"
    assert split_reply(text, 40) == ["line one is here\nline two is here", "line three"]


def test_word_boundary_when_no_newline():
    assert split_reply("one two three four", 9) == ["one two", "three", "four"]


def test_hard_split_without_whitespace():
    assert split_reply("abcdefghij", 6) == ["abcdef", "ghij"]


def test_small_trailing_paragraph_does_not_force_tiny_part():
    # The blank line is in the first half: cut at a newline in the second half instead.
    text = "a\n\n" + "word " * 8 + "\nmore words here"
    parts = split_reply(text, 40)
    assert parts[0].startswith("a\n\nword")
    assert_lossless(text, parts)


def test_indentation_after_cut_is_kept():
    text = "def f():\n    return 1\n    # tail"
    parts = split_reply(text, 24, balance_fences=False)
    assert parts == ["def f():\n    return 1", "    # tail"]


def test_blank_lines_after_cut_dropped():
    parts = split_reply("aaaa\n\n\n   \n\nbbbb", 6)
    assert parts == ["aaaa", "bbbb"]


def test_indentation_wider_than_budget_is_dropped():
    # Three tabs (6 JSON bytes) leave no room for "a": never send a blank part.
    assert split_reply("\t\t\ta", 6) == ["a"]
    assert split_reply("x\n\t\t\tab", 6) == ["x", "ab"]


def test_budget_too_small():
    with pytest.raises(ValueError, match="budget_bytes"):
        split_reply("x", 5)


def test_cyrillic_counts_two_bytes():
    text = "я" * 10
    assert split_reply(text, 8) == ["яяяя", "яяяя", "яя"]


def test_emoji_never_split():
    text = "😀" * 5
    assert split_reply(text, 9) == ["😀😀", "😀😀", "😀"]


def test_zwj_sequence_kept_together():
    dev = "👩\u200d💻"  # 11 bytes
    parts = split_reply(dev * 3, 25)
    assert parts == [dev * 2, dev]


def test_combining_marks_kept_with_base():
    text = "e\u0301" * 6  # each cluster 3 bytes
    parts = split_reply(text, 10)
    assert parts == ["e\u0301" * 3, "e\u0301" * 3]


def test_flags_kept_together():
    flag = "\U0001f1fa\U0001f1e6"  # 8 bytes
    parts = split_reply(flag * 3, 20)
    assert parts == [flag * 2, flag]


def test_json_heavy_text_counts_escapes():
    text = '"\\"\\' * 10  # 40 chars, 80 JSON bytes
    parts = split_reply(text, 16)
    assert all(json_size(p) <= 16 for p in parts)
    assert "".join(parts) == text
    assert len(parts) == 5


def test_control_characters_cost_six():
    text = "\x01" * 5
    assert split_reply(text, 12) == ["\x01\x01", "\x01\x01", "\x01"]


def test_300kb_reply_default_budget():
    rng = random.Random(7)
    words = ["Привет", "мир", "hello", '"quoted"', "back\\slash", "😀", "tab\t", "x" * 40]
    chunks = []
    while sum(map(len, chunks)) < 300_000:
        chunks.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))))
        chunks.append(rng.choice(["\n", "\n\n", " "]))
    text = "".join(chunks)
    assert len(text.encode()) > 300_000
    parts = split_reply(text, balance_fences=False)
    assert_within(parts, PART_BUDGET_BYTES)
    assert_lossless(text, parts)
    # Greedy: every part but the last is at least half full.
    assert all(json_size(p) >= PART_BUDGET_BYTES // 2 for p in parts[:-1])
    assert len(parts) >= json_size(text) // PART_BUDGET_BYTES


def test_edit_of_each_part_fits_event_limit():
    text = ('He said "hi" \\ and left.\n' * 4000) + ("й" * 20_000)
    for part in split_reply(text):
        html = part  # worst realistic case: the HTML is as large as the text
        content = {
            "msgtype": "m.text",
            "body": "* " + part,
            "format": "org.matrix.custom.html",
            "formatted_body": "* " + html,
            "m.new_content": {
                "msgtype": "m.text",
                "body": part,
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            },
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$" + "x" * 43},
        }
        size = len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())
        # A real PDU envelope (ids, auth/prev events, hashes, signatures) is ~1.5-2 KB.
        assert size + 2_500 <= MATRIX_EVENT_LIMIT_BYTES


def test_prefix_cuts_are_stable_while_streaming():
    rng = random.Random(3)
    text = " ".join(rng.choice(["alpha", "beta\n", "gamma\n\n", "δέλτα"]) for _ in range(2000))
    final = split_reply(text, 300)
    for length in range(0, len(text), 97):
        partial = split_reply(text[:length], 300)
        if not partial:
            continue
        # All parts but the last (still growing) one are final already.
        assert partial[:-1] == final[: len(partial) - 1]


def test_fences_balanced_across_parts():
    code = "\n".join(f"x{i} = {i}" for i in range(40))
    text = f"Intro.\n\n```python\n{code}\n```\n\nOutro."
    parts = split_reply(text, 120)
    assert len(parts) > 2
    for part in parts[:-1]:
        assert part.count("```") % 2 == 0, part
    for part in parts[1:]:
        if not part.startswith(("Intro", "Outro")):
            assert part.startswith("```python\n")
    assert_within(parts, 120)
    # Without the added fence lines the text is intact.
    undecorated = []
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1].endswith("\n```") and part.startswith("```python\n"):
            part = part.removeprefix("```python\n")
        if i < len(parts) - 1 and part.endswith("\n```") and parts[i + 1].startswith("```python\n"):
            part = part.removesuffix("\n```")
        undecorated.append(part)
    assert_lossless(text, undecorated)


def test_tilde_and_long_fences():
    text = "~~~~\n" + "a\n" * 30 + "~~~~\nend"
    parts = split_reply(text, 30)
    assert parts[0].startswith("~~~~\n")
    assert parts[0].endswith("\n~~~~")
    assert parts[1].startswith("~~~~\n")
    assert_within(parts, 30)


def test_last_part_not_decorated():
    text = "```\n" + "line\n" * 10  # unclosed: still streaming
    parts = split_reply(text, 30)
    assert not parts[-1].endswith("```")
    assert parts[-1].startswith("```\n")


def test_fence_balancing_can_be_disabled():
    text = "```\n" + "line\n" * 10 + "```"
    parts = split_reply(text, 30, balance_fences=False)
    assert_lossless(text, parts)
    assert parts[0] == "```\nline\nline\nline\nline"


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                *'ab \n\t"\\\x01я😀\u200d\u0301`~',
                *("```", "\n\n", "\U0001f1fa", "word", "    ", "```py\n"),
            ]
        ),
        max_size=200,
    ).map("".join),
    budget=st.integers(6, 80),
)
def test_property_plain_split(text, budget):
    parts = split_reply(text, budget, balance_fences=False)
    assert_within(parts, budget)
    assert_lossless(text, parts)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from(["```", "```py", "~~~", "code line", "", "text", "  ```", "`` x"]),
        max_size=60,
    ),
    budget=st.integers(6, 120),
)
def test_property_fenced_split_within_budget(lines, budget):
    text = "\n".join(lines)
    parts = split_reply(text, budget)
    assert_within(parts, budget)
    assert all(p.strip() for p in parts)

    # Removing the fence lines on both sides gives the same visible text.
    def strip_fences(s: str) -> str:
        return "".join(ch for ch in s if ch not in "`~" and not ch.isspace()).replace("py", "")

    assert strip_fences("".join(parts)) == strip_fences(text)
