"""Fitting a bot text into a bounded number of events, with a visible mark."""

from __future__ import annotations

from surfaces.render import clip, fit_parts, json_size


def test_clip_keeps_short_text():
    assert clip("short", 10, "(cut)") == "short"


def test_clip_cuts_with_a_mark():
    assert clip("abcdef  ghij", 8, "(cut)") == "abcdef… (cut)"


def test_fit_keeps_what_fits():
    assert fit_parts("one two three", 100, max_parts=2, mark="!") == ["one two three"]
    assert fit_parts("", 100, max_parts=2, mark="!") == []


def test_fit_splits_into_at_most_max_parts_and_marks_the_cut():
    text = " ".join(f"word{n}" for n in range(1_000))
    parts = fit_parts(text, 200, max_parts=3, mark="(truncated)")
    assert len(parts) == 3
    assert parts[-1].endswith("…\n(truncated)")
    assert all(json_size(p) <= 200 for p in parts)
    assert parts[0].startswith("word0 word1")


def test_fit_of_a_huge_text_only_looks_at_what_it_keeps():
    parts = fit_parts("x" * 10_000_000, 1_000, max_parts=2, mark="!")
    assert len(parts) == 2
    assert parts[-1].endswith("…\n!")
    assert all(json_size(p) <= 1_000 for p in parts)


def test_fit_with_a_budget_smaller_than_the_mark():
    parts = fit_parts("a b c d e f g h", 8, max_parts=1, mark="(truncated)")
    assert len(parts) == 1
    assert json_size(parts[0]) <= 8
