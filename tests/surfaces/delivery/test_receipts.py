"""Read receipts: one per room for what nothing else marked seen, bounded, best effort."""

from __future__ import annotations

import attrs
import trio

from matrix_client import TransportError
from surfaces.delivery import ReadReceipts


@attrs.define
class FakeMatrix:
    sent: list[tuple[str, str]] = attrs.Factory(list)
    fail: bool = False

    async def send_receipt(self, room_id: str, event_id: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.fail:
            raise TransportError("down")
        self.sent.append((room_id, event_id))


async def test_the_latest_message_per_room_after_the_delay(autojump_clock):
    matrix = FakeMatrix()
    receipts = ReadReceipts(matrix, delay_s=2.0)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(receipts.run)
        receipts.admitted("!a", "$1")
        await trio.sleep(1)
        receipts.admitted("!a", "$2")  # the same room: one receipt, the latest event
        receipts.admitted("!b", "$3")
        await trio.sleep(1.5)
        assert matrix.sent == [("!a", "$2")]  # due 2 s after the room's first message
        await trio.sleep(1)
        assert matrix.sent == [("!a", "$2"), ("!b", "$3")]
        nursery.cancel_scope.cancel()


async def test_a_send_to_the_room_marks_it_seen_unless_the_message_came_later(autojump_clock):
    matrix = FakeMatrix()
    receipts = ReadReceipts(matrix, delay_s=2.0)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(receipts.run)
        receipts.admitted("!a", "$1")
        receipts.covered("!a", trio.current_time())  # the bot answered: nothing to send
        started = trio.current_time()
        await trio.sleep(0.5)
        receipts.admitted("!b", "$2")  # admitted while a send to !b was in flight
        receipts.covered("!b", started)
        await trio.sleep(5)
        assert matrix.sent == [("!b", "$2")]
        nursery.cancel_scope.cancel()


async def test_bounded_and_failures_are_forgotten(autojump_clock):
    matrix = FakeMatrix(fail=True)
    receipts = ReadReceipts(matrix, delay_s=1.0, max_rooms=2)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(receipts.run)
        for room in ("!a", "!b", "!c"):
            receipts.admitted(room, f"${room}")
        assert receipts.pending() == 2  # the oldest was dropped
        await trio.sleep(2)
        assert receipts.pending() == 0  # failed sends are not retried
        assert receipts.sent == 0
        matrix.fail = False
        receipts.admitted("!d", "$d")
        await trio.sleep(2)
        assert matrix.sent == [("!d", "$d")]
        nursery.cancel_scope.cancel()
