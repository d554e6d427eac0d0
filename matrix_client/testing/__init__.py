"""A scripted, in-memory fake homeserver for deterministic tests.

Serve it to a :class:`~matrix_client.MatrixClient` through ``httpx.MockTransport``
(``hs.transport()``, or ``hs.user_client(user)`` for a ready client); everything
runs on trio time, so tests use ``autojump_clock`` and never sleep::

    from matrix_client.testing import FakeHomeserver, Fault

    async def test_reply(autojump_clock):
        hs = FakeHomeserver()
        bot, alice = hs.register("bot"), hs.register("alice")
        room = hs.invite_bot(bot, inviter=alice)
        hs.inject("PUT", "/rooms/*/send/*", Fault.http_status(502))
        async with hs.user_client(bot) as client:
            await client.join(room)
            await client.send_event(room, "m.room.message", {...}, txn_id="t1")
        assert len(hs.messages_from(bot, room)) == 1

:class:`CryptoUser` is an end-to-end-encrypting user on a ``MatrixClient`` (our
crypto machine, its state in memory) for tests and the demo.

A real homeserver for e2e tests, benchmarks and the demo is here too:
:class:`LocalSynapse` runs the installed ``matrix-synapse`` on loopback (not imported
by the product at run time).
"""

from ._crypto_user import CryptoUser
from ._faults import Fault, LoggedRequest
from ._model import EncryptionDefault, FakeLogin
from ._server import DEFAULT_VERSIONS, FakeHomeserver, FakeHomeserverError, FakeUser
from ._synapse import (
    LocalSynapse,
    RatelimitProfile,
    RegisteredUser,
    SynapseError,
    SynapseOptions,
    SynapseStartError,
    free_loopback_port,
)

__all__ = [
    "DEFAULT_VERSIONS",
    "CryptoUser",
    "EncryptionDefault",
    "FakeHomeserver",
    "FakeHomeserverError",
    "FakeLogin",
    "FakeUser",
    "Fault",
    "LocalSynapse",
    "LoggedRequest",
    "RatelimitProfile",
    "RegisteredUser",
    "SynapseError",
    "SynapseOptions",
    "SynapseStartError",
    "free_loopback_port",
]
