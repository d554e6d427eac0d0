import pytest
import trio
from agent_fakes import FakeAgent


@pytest.fixture
def fake_agent(nursery: trio.Nursery) -> FakeAgent:
    return FakeAgent(nursery)
