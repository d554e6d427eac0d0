"""STATUS ``boot_id`` (project extension): parsed strictly, exposed on the turn and the
probe; the reference agent sends one per instance and answers a transcript primer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from agent_client import AgentClient, TextChunk, TurnLimits
from agent_client._frames import MAX_BOOT_ID_CHARS, Status, parse_frame, status_boot_id
from agent_client.reference import ReferenceAgent, serve_reference_agent

FAST = TurnLimits(connect_s=5, status_s=5, first_text_s=5, idle_s=5, total_s=20, retries=0)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"boot_id": "abc123"}, "abc123"),
        ({}, None),
        ({"boot_id": ""}, None),
        ({"boot_id": 42}, None),
        ({"boot_id": ["x"]}, None),
        ({"boot_id": "x" * MAX_BOOT_ID_CHARS}, "x" * MAX_BOOT_ID_CHARS),
        ({"boot_id": "x" * (MAX_BOOT_ID_CHARS + 1)}, None),
    ],
)
def test_status_boot_id_parsing(data, expected):
    assert status_boot_id(Status(data)) == expected


def test_parse_frame_keeps_boot_id_in_status_data():
    frame = parse_frame('{"type": "STATUS", "boot_id": "b1", "agent": "x"}')
    assert isinstance(frame, Status)
    assert status_boot_id(frame) == "b1"


@pytest.fixture
async def agent(nursery: trio.Nursery, tmp_path: Path) -> tuple[ReferenceAgent, str]:
    ref = ReferenceAgent(tmp_path, chunk_delay_s=0)
    port = await nursery.start(partial(serve_reference_agent, agent=ref), "127.0.0.1", 0, tmp_path)
    return ref, f"http://127.0.0.1:{port}"


async def test_turn_and_probe_expose_the_reference_agents_boot_id(agent, tmp_path):
    ref, base = agent
    client = AgentClient(FAST)
    async with client.turn(base, "7", "hello") as turn:
        assert turn.boot_id == ref.boot_id
        _ = [e async for e in turn]
    assert (await client.probe(base, "7")).boot_id == ref.boot_id
    assert ReferenceAgent(tmp_path).boot_id != ref.boot_id  # another process: another id


async def test_reference_agent_acknowledges_a_primer_and_recalls_it(agent):
    _ref, base = agent
    client = AgentClient(FAST)

    async def ask(text: str) -> str:
        async with client.turn(base, "9", text) as turn:
            return "".join([e.text async for e in turn if isinstance(e, TextChunk)])

    primer = (
        "<<<SURFACES TRANSCRIPT v1 exchanges=2 omitted=0>>>\ninstruction\n"
        "user: my name is Ada\nagent: hi Ada\nuser: I like trio\nagent: nice\n"
        "<<<END TRANSCRIPT>>>"
    )
    assert await ask(primer) == "Transcript received: 2 exchanges. I remember them now."
    await ask("and tea")
    assert await ask("/recall") == (
        "I remember 3 earlier messages: «my name is Ada» · «I like trio» · «and tea»"
    )
