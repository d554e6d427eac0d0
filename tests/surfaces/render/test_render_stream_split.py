"""ReplySplitter: the streaming split gives exactly ``split_reply``'s parts, however the
text arrives, while keeping finished parts and splitting only the tail."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from surfaces.render import MAX_FENCE_LINE_CHARS, STEP_CHARS, ReplySplitter, split_reply

PIECES = [
    *'ab \n\t"\\\x01я😀\u200d\u0301`~',
    *("```", "\n\n", "\U0001f1fa", "word", "    ", "```py\n", "~~~\n", "\n```\n", "   \n"),
]


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def fed(chunks: list[str], budget: int, *, fences: bool = True, step: int = STEP_CHARS):
    splitter = ReplySplitter(budget, balance_fences=fences)
    for chunk in chunks:
        splitter.feed(chunk)
        while splitter.step(step):
            pass
    return splitter


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from(PIECES), max_size=200).map("".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    budget=st.integers(6, 90),
    step=st.integers(1, 40),
    fences=st.booleans(),
)
def test_streaming_split_equals_batch_split(text, cuts, budget, step, fences):
    chunks = chunked(text, cuts)
    splitter = ReplySplitter(budget, balance_fences=fences)
    for i, chunk in enumerate(chunks):
        splitter.feed(chunk)
        while splitter.step(step):
            pass
        so_far = "".join(chunks[: i + 1])
        # Finished parts are a prefix of every later split (they never change) ...
        assert (
            splitter.finished
            == split_reply(so_far, budget, balance_fences=fences)[: len(splitter.finished)]
        )
    # ... and all parts together are exactly the batch split.
    assert splitter.parts() == split_reply(text, budget, balance_fences=fences)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from(PIECES), max_size=120).map("".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    budget=st.integers(6, 90),
    extra=st.sampled_from(["🔧 tool…", "⚠️ (interrupted)", "```", "a b c d e f g h"]),
)
def test_parts_with_a_line_appended_equals_batch(text, cuts, budget, extra):
    splitter = fed(chunked(text, cuts), budget, step=7)
    shown = text.rstrip()
    expected = split_reply(f"{shown}\n\n{extra}" if shown else extra, budget)
    assert splitter.parts_with(extra) == expected
    # Asking with a line appended does not change the text itself.
    assert splitter.parts() == split_reply(text, budget)


def test_long_fenced_reply_in_small_chunks_equals_batch():
    rng = random.Random(5)
    blocks = []
    for i in range(300):
        if i % 7 == 0:
            blocks.append("```python\n" + "\n".join(f"    v{j} = {j}" for j in range(12)) + "\n```")
        elif i % 11 == 0:
            blocks.append("~~~~\n" + "tilde code\n" * 5 + "~~~~")
        else:
            blocks.append(
                " ".join(rng.choice(["alpha", "бета", "gamma", '"q"', "x\\y"]) for _ in range(80))
            )
    text = "\n\n".join(blocks)
    chunks = [text[i : i + 37] for i in range(0, len(text), 37)]
    splitter = fed(chunks, 600)
    assert splitter.parts() == split_reply(text, 600)
    assert len(splitter.finished) >= len(splitter.parts()) - 2


def test_work_per_step_is_bounded_by_the_tail_not_the_reply():
    """4 M characters fed in 4,000-character frames: the tail the splitter keeps (and
    re-splits) never grows past about two parts plus one step."""
    budget = 15_360
    splitter = ReplySplitter(budget)
    word = "lorem ipsum dolor sit amet, consectetur adipiscing elit\n"
    frame = word * (4_000 // len(word))
    largest_tail = 0
    for _ in range(4_000_000 // len(frame)):
        splitter.feed(frame)
        while splitter.step():
            pass
        largest_tail = max(largest_tail, len(splitter._buf))
    assert largest_tail <= 2 * budget + len(frame)
    assert len(splitter.finished) > 250


def test_a_huge_frame_is_taken_in_steps():
    splitter = ReplySplitter(15_360)
    splitter.feed("word " * 200_000)  # 1 M characters in one frame
    steps = 1
    while splitter.step():
        steps += 1
    assert steps == -(-1_000_000 // STEP_CHARS)
    assert len(splitter._buf) <= 2 * 15_360 + STEP_CHARS


def test_a_fence_candidate_line_is_decided_after_the_bound():
    """ "```" followed by a very long line: whether it opens a fence is known once the
    line is longer than MAX_FENCE_LINE_CHARS, so parts still finish."""
    text = "```" + "x" * (MAX_FENCE_LINE_CHARS * 20)
    splitter = fed([text[i : i + 500] for i in range(0, len(text), 500)], 300)
    assert splitter.parts() == split_reply(text, 300)
    assert len(splitter.finished) >= len(splitter.parts()) - 2


def test_incomplete_fence_line_keeps_parts_open_until_settled():
    splitter = ReplySplitter(20)
    splitter.feed("aaaa bbbb cccc dddd\n``")  # the last line may still open a fence
    splitter.feed("`python\n")
    splitter.feed("x = 1\n" * 10)
    assert splitter.parts() == split_reply("aaaa bbbb cccc dddd\n```python\n" + "x = 1\n" * 10, 20)
