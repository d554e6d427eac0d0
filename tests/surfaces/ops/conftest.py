from __future__ import annotations

import attrs
import pytest


@attrs.define
class FakeClock:
    """A clock the test moves by hand: ``clock.now += 10``."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
