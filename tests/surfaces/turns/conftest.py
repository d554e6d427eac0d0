"""Fixtures for turn tests: an onboarded user with one working chat."""

from __future__ import annotations

import pytest
from turn_helpers import Chat


@pytest.fixture
async def chat(harness, autojump_clock) -> Chat:
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    c = Chat(harness, alice, room, 0)
    c.mark()
    return c
