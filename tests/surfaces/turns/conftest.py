"""Fixtures for turn tests: an onboarded user with one working chat."""

from __future__ import annotations

import pytest
import trio
import trio._path
from turn_helpers import Chat


@pytest.fixture(autouse=True)
def inline_threads(monkeypatch):
    """File I/O on the event loop: a worker thread would let ``autojump_clock`` jump
    while it runs (the same reason the harness runs SQLite inline)."""

    async def run_sync(fn, *args, **kwargs):
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)
    monkeypatch.setattr(trio._path, "run_sync", run_sync)


@pytest.fixture
async def chat(harness, autojump_clock) -> Chat:
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    c = Chat(harness, alice, room, 0)
    c.mark()
    return c
