from __future__ import annotations

import pytest

from matrix_client import RetryPolicy
from matrix_client.testing import FakeHomeserver, FakeUser

#: No jitter, so virtual-time assertions are exact.
EXACT = RetryPolicy(max_attempts=4, base_s=1.0, max_s=8.0, max_429_wait_s=60.0, jitter=0.0)


@pytest.fixture
def exact() -> RetryPolicy:
    return EXACT


@pytest.fixture
def hs() -> FakeHomeserver:
    return FakeHomeserver()


@pytest.fixture
def bot(hs: FakeHomeserver) -> FakeUser:
    return hs.register("bot", displayname="Bot")


@pytest.fixture
def alice(hs: FakeHomeserver) -> FakeUser:
    return hs.register("alice", displayname="Alice")


@pytest.fixture
def room(hs: FakeHomeserver, bot: FakeUser, alice: FakeUser) -> str:
    """A room alice created, with the bot joined."""
    room_id = hs.invite_bot(bot, inviter=alice, is_direct=False, name="Work")
    hs.join_as(bot, room_id)
    return room_id
