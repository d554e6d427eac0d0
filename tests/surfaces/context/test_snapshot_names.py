"""Snapshot names (``!save [name]``): validated, bounded, canonical."""

from __future__ import annotations

import pytest

from surfaces.commands.context import MAX_SNAPSHOT_NAME, snapshot_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plan", "plan"),
        ("Plan-V2", "plan-v2"),
        ("  release_1.0 ", "release_1.0"),
        ("План", "план"),
        ("2026-12-07-1530", "2026-12-07-1530"),
        ("a" * MAX_SNAPSHOT_NAME, "a" * MAX_SNAPSHOT_NAME),
        ("a" * (MAX_SNAPSHOT_NAME + 1), None),
        ("", None),
        ("../etc", None),
        (".hidden", None),
        ("-x", None),
        ("_x", None),
        ("two words", None),
        ("a/b", None),
        ("a\nb", None),
        ("x\u202e", None),  # a bidi override is not a name character
        ("e\u0301", "é"),  # NFC: the same name however it was typed
    ],
)
def test_snapshot_name(raw, expected):
    assert snapshot_name(raw) == expected
