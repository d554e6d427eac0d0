"""ReplyStream on its own (a fake outbox): when the flusher wakes up."""

from __future__ import annotations

import trio
import trio.testing

from surfaces.render import EditThrottle
from surfaces.turns import ReplyStream


class FakeOutbox:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.edits: list[str] = []

    async def send(self, send, *, part=None):
        self.messages.append(send.content["body"])
        return f"$m{len(self.messages)}"

    async def send_ephemeral(self, room_id, event_type, content):
        self.edits.append(content["m.new_content"]["body"])
        return f"$e{len(self.edits)}"


class CountingReply(ReplyStream):
    renders = 0

    def _display(self) -> list[str]:
        type(self).renders += 1
        return super()._display()


def stream(outbox: FakeOutbox, budget: int, first_message_after_s: float = 0.0) -> CountingReply:
    return CountingReply(
        outbox=outbox,
        room_id="!r",
        turn_key="$t",
        attempt=1,
        parts={},
        throttle=EditThrottle(first_edit_after_s=1.0, idle_flush_s=10.0),
        budget=budget,
        first_message_after_s=first_message_after_s,
    )


async def test_chunks_during_a_throttled_wait_do_not_wake_the_flusher(autojump_clock):
    outbox = FakeOutbox()
    reply = stream(outbox, budget=6_000)
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        reply.append("first")
        await trio.testing.wait_all_tasks_blocked()
        assert outbox.messages == ["first"]
        reply.append(" 0")  # wakes the idle flusher, which then waits for the throttle
        await trio.testing.wait_all_tasks_blocked()
        before = CountingReply.renders
        for i in range(1, 50):
            reply.append(f" {i}")
            await trio.sleep(0.01)
        assert CountingReply.renders == before  # 49 chunks, no wake-ups before the edit is due
        await trio.sleep(1.0)
        assert outbox.edits == ["first" + "".join(f" {i}" for i in range(50))]
        nursery.cancel_scope.cancel()


async def test_text_that_may_need_a_new_message_still_wakes_it_at_once(autojump_clock):
    outbox = FakeOutbox()
    reply = stream(outbox, budget=60)  # 10 characters certainly fit; more may not
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        reply.append("a" * 8)
        await trio.testing.wait_all_tasks_blocked()
        assert outbox.messages == ["a" * 8]
        reply.append(" " + "b" * 60)  # overflows into a second message
        await trio.testing.wait_all_tasks_blocked()
        assert len(outbox.messages) == 2  # sent now, not when the edit is due
        assert trio.current_time() < 1.0
        nursery.cancel_scope.cancel()


async def test_first_message_gathers_the_text_of_its_window(autojump_clock):
    outbox = FakeOutbox()
    reply = stream(outbox, budget=6_000, first_message_after_s=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        reply.append("chunk 1")
        for i in range(2, 101):  # an instant agent: everything within the window
            await trio.sleep(0.0005)
            reply.append(f"\nchunk {i}")
        await trio.testing.wait_all_tasks_blocked()
        assert outbox.messages == []  # still inside the window
        await trio.sleep(0.1)
        assert outbox.messages == ["\n".join(f"chunk {i}" for i in range(1, 101))]
        assert outbox.edits == []
        # later text: edits on the throttle's schedule, no second wait
        reply.append(" more")
        await trio.sleep(1.5)
        assert outbox.edits[-1].endswith("chunk 100 more")
        nursery.cancel_scope.cancel()


async def test_a_turn_that_ends_inside_the_window_leaves_the_message_to_the_final_sends(
    autojump_clock,
):
    outbox = FakeOutbox()
    reply = stream(outbox, budget=6_000, first_message_after_s=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        reply.append("ok")
        await trio.sleep(0.001)  # END arrives: the runner settles and stops the flusher
        await reply.settle()
        nursery.cancel_scope.cancel()
    assert outbox.messages == []
    [final] = reply.final_sends()
    assert (final.txn_id, final.content["body"]) == ("$t.p0", "ok")  # the message itself
