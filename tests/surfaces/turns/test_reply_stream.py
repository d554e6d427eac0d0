"""ReplyStream on its own (a fake outbox): when the flusher wakes up."""

from __future__ import annotations

import trio
import trio.testing

from surfaces.render import EditThrottle, ReplySplitter
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


def stream(
    outbox: FakeOutbox, budget: int, first_message_after_s: float = 0.0, **limits
) -> CountingReply:
    return CountingReply(
        outbox=outbox,
        room_id="!r",
        turn_key="$t",
        attempt=1,
        parts={},
        throttle=EditThrottle(first_edit_after_s=1.0, idle_flush_s=10.0),
        budget=budget,
        first_message_after_s=first_message_after_s,
        **limits,
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


# ---- bounded work and memory (issue 13 §5) -----------------------------------------


def capped(outbox: FakeOutbox, budget: int, max_chars: int) -> ReplyStream:
    return stream(outbox, budget, max_chars=max_chars, truncated_mark="(cut)")


async def test_a_reply_past_max_chars_is_cut_with_a_mark_and_the_rest_dropped(autojump_clock):
    reply = capped(FakeOutbox(), budget=6_000, max_chars=50)
    for _ in range(20):
        reply.append("0123456789")
    assert (reply.chars, reply.dropped, reply.truncated) == (50, 150, True)
    [final] = reply.final_sends()
    assert final.content["body"] == "0123456789" * 5 + "…\n\n(cut)"
    assert await reply.finish() == reply.final_sends()


async def test_a_huge_frame_is_taken_in_steps_with_checkpoints_between(autojump_clock):
    """1 M characters in one frame: the flusher splits them in bounded steps and lets
    every other task run between two steps (no long hold of the event loop)."""
    outbox = FakeOutbox()
    reply = capped(outbox, budget=15_360, max_chars=2_000_000)
    steps_in_task_step = [0]
    most = [0]

    class Counter(trio.abc.Instrument):
        def before_task_step(self, task) -> None:
            steps_in_task_step[0] = 0

        def after_task_step(self, task) -> None:
            most[0] = max(most[0], steps_in_task_step[0])

    calls = []

    class CountingSplitter(ReplySplitter):
        def _take(self, piece: str) -> None:  # a step that takes text in
            steps_in_task_step[0] += 1
            calls.append(len(piece))
            super()._take(piece)

    reply._splitter = CountingSplitter(15_360)
    trio.lowlevel.add_instrument(Counter())
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        reply.append("word " * 200_000)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert len(calls) >= 1_000_000 // 16_384
    assert max(calls) <= 16_384
    assert most[0] <= 1  # never two steps without a checkpoint in between
    assert len(outbox.messages) >= 60  # and the parts went out as messages


async def test_every_character_is_split_once_and_the_resplit_tail_stays_small(autojump_clock):
    """4 M characters in 4,000-character frames: the splitter takes each character in
    once, and what it splits again at every flush is the tail, never the reply."""
    outbox = FakeOutbox()
    reply = capped(outbox, budget=15_360, max_chars=5_000_000)
    taken = []
    tails = []

    class CountingSplitter(ReplySplitter):
        def _take(self, piece: str) -> None:
            taken.append(len(piece))
            super()._take(piece)

        def _finish(self) -> None:
            tails.append(len(self._buf))
            super()._finish()

    reply._splitter = CountingSplitter(15_360)
    frame = "lorem ipsum dolor sit amet\n" * 148  # 3,996 characters
    async with trio.open_nursery() as nursery:
        await nursery.start(reply.run)
        for _ in range(1_000):
            reply.append(frame)
            await trio.sleep(0.001)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert sum(taken) == 1_000 * len(frame)
    assert max(tails) <= 2 * 15_360 + 16_384
    final = await reply.finish()
    assert len(outbox.messages) + len(final) >= 260
