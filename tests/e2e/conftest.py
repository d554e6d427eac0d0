"""Fixtures for tests against a real Synapse (``matrix_client.testing.LocalSynapse``).

One Synapse with lifted rate limits serves the whole session (``synapse``); a second
one with Synapse's default rate limits (``synapse_default``) starts only when a test
asks for it. Both are started from sync session fixtures with plain subprocesses,
because pytest-trio runs every test (and its async fixtures) in a fresh trio run.

If Synapse cannot start, the fixture raises ``SynapseStartError`` with the tail of
Synapse's log: the tests error, they are never skipped.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from matrix_client.testing import LocalSynapse, RegisteredUser

MakeUser = Callable[..., Awaitable[RegisteredUser]]

_counter = itertools.count(1)


def _unique_localpart(prefix: str) -> str:
    # Unique within the session (counter) and across reused state dirs (uuid).
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def _factory(hs: LocalSynapse) -> MakeUser:
    async def make_user(
        prefix: str = "user", *, admin: bool = False, displayname: str | None = None
    ) -> RegisteredUser:
        """Register a fresh user (unique localpart starting with ``prefix``)."""
        localpart = _unique_localpart(prefix)
        return await hs.register(
            localpart, f"pw-{uuid.uuid4().hex}", admin=admin, displayname=displayname
        )

    return make_user


@pytest.fixture(scope="session")
def synapse() -> Iterator[LocalSynapse]:
    """A Synapse with every rate limit lifted, shared by the whole session."""
    with LocalSynapse.running_blocking(ratelimits="lifted") as hs:
        yield hs


@pytest.fixture(scope="session")
def synapse_default() -> Iterator[LocalSynapse]:
    """A Synapse with Synapse's default rate limits (rc_message 0.2/s, burst 10)."""
    with LocalSynapse.running_blocking(ratelimits="default") as hs:
        yield hs


@pytest.fixture
def make_user(synapse: LocalSynapse) -> MakeUser:
    """``await make_user("alice")`` registers a fresh user on ``synapse``."""
    assert synapse.is_running(), f"Synapse died during the session:\n{synapse.log_tail()}"
    return _factory(synapse)


@pytest.fixture
def make_default_user(synapse_default: LocalSynapse) -> MakeUser:
    """``await make_default_user("bob")`` registers a fresh user on ``synapse_default``."""
    assert synapse_default.is_running(), (
        f"Synapse died during the session:\n{synapse_default.log_tail()}"
    )
    return _factory(synapse_default)
