"""The client rides out Synapse's real 429s (default ``rc_message``: 0.2/s, burst 10).

Fourteen quick sends: the first ten fit the burst, the other four each meet a 429 and
wait the ``Retry-After`` Synapse asks for (5-6 s), so the test takes ~25 s.
"""

from __future__ import annotations

import pytest
import trio

from matrix_client import MatrixClient, new_txn_id, text_content
from matrix_client.testing import LocalSynapse

pytestmark = pytest.mark.synapse

COUNT = 14


async def test_sends_ride_out_real_429s_and_arrive_exactly_once(
    synapse_default: LocalSynapse, make_default_user
) -> None:
    alice = await make_default_user("limited")
    statuses: list[tuple[str, int]] = []

    def on_request(endpoint: str, status: int, seconds: float) -> None:
        statuses.append((endpoint, status))

    async with MatrixClient(
        synapse_default.base_url,
        access_token=alice.access_token,
        user_id=alice.user_id,
        device_id=alice.device_id,
    ) as client:
        client.on_request = on_request
        with trio.fail_after(15):
            room_id = await client.create_room(name="Rate limited")

        bodies = [f"message {i:02d}" for i in range(COUNT)]
        with trio.fail_after(90):
            sent = [
                await client.send_event(
                    room_id, "m.room.message", text_content(body), txn_id=new_txn_id()
                )
                for body in bodies
            ]

        with trio.fail_after(15):
            page = await client.room_messages(room_id, from_token=None, direction="f", limit=100)

    sends = [status for endpoint, status in statuses if "/send" in endpoint]
    assert 429 in sends, statuses  # Synapse really pushed back ...
    assert sends.count(200) == COUNT  # ... and every message was accepted exactly once
    assert len(set(sent)) == COUNT
    messages = [e for e in page.chunk if e.type == "m.room.message"]
    assert [e.content["body"] for e in messages] == bodies
    assert [e.event_id for e in messages] == sent
