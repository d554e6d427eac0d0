"""Fixtures of the fault suite (tests/faults); helpers are in fault_helpers.py.

Deterministic cases use the ``harness`` fixture from ``tests/conftest.py``. The
process case (``test_process_kills.py``) needs a real Synapse: ``synapse`` below.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from matrix_client.testing import LocalSynapse


@pytest.fixture(scope="session")
def synapse() -> Iterator[LocalSynapse]:
    """A Synapse with lifted rate limits for the process fault tests."""
    with LocalSynapse.running_blocking(ratelimits="lifted") as hs:
        yield hs
