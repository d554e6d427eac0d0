from __future__ import annotations

import pytest
from crypto_harness import KeyServer, Peer, new_peer


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


@pytest.fixture
def alice(server: KeyServer) -> Peer:
    return new_peer(server, "@alice:x", "ALICE1")


@pytest.fixture
def bob(server: KeyServer) -> Peer:
    return new_peer(server, "@bob:x", "BOB1")
