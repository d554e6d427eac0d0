import pytest
import trio
import trio.testing
from trio.testing import MockClock

from agent_client import ChatSerializer


async def test_same_chat_is_serial_and_fifo(autojump_clock: MockClock) -> None:
    serializer = ChatSerializer()
    log: list[str] = []
    active = 0

    async def turn(name: str, delay: float) -> None:
        nonlocal active
        await trio.sleep(delay)  # arrival order: by delay
        async with serializer.hold("41"):
            active += 1
            assert active == 1
            log.append(f"start {name}")
            await trio.sleep(1)
            log.append(f"end {name}")
            active -= 1

    async with trio.open_nursery() as nursery:
        for i, name in enumerate("abcd"):
            nursery.start_soon(turn, name, i * 0.1)
    assert log == [f"{kind} {n}" for n in "abcd" for kind in ("start", "end")]
    assert len(serializer) == 0


async def test_different_chats_overlap(autojump_clock: MockClock) -> None:
    serializer = ChatSerializer()
    start = trio.current_time()

    async def turn(chat: str) -> None:
        async with serializer.hold(chat):
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for chat in ("1", "2", "3"):
            nursery.start_soon(turn, chat)
    assert trio.current_time() - start == 1


async def test_waiter_can_be_cancelled(autojump_clock: MockClock) -> None:
    serializer = ChatSerializer()
    order: list[str] = []
    release = trio.Event()

    async def holder() -> None:
        async with serializer.hold("41"):
            order.append("holder")
            await release.wait()

    async def follower() -> None:
        async with serializer.hold("41"):
            order.append("follower")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await trio.testing.wait_all_tasks_blocked()
        waiter_scope = trio.CancelScope()

        async def waiter() -> None:
            with waiter_scope:
                async with serializer.hold("41"):
                    order.append("cancelled waiter got the lock")  # pragma: no cover

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert serializer.waiting("41") == 2
        waiter_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert serializer.waiting("41") == 1
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        assert serializer.busy("41")
        release.set()
    assert order == ["holder", "follower"]
    assert len(serializer) == 0


async def test_entries_are_dropped(autojump_clock: MockClock) -> None:
    serializer = ChatSerializer()
    for i in range(1000):
        async with serializer.hold(str(i)):
            assert len(serializer) == 1
    assert len(serializer) == 0
    assert not serializer.busy("1")
    assert serializer.waiting("1") == 0


async def test_exception_releases(autojump_clock: MockClock) -> None:
    serializer = ChatSerializer()

    async def failing() -> None:
        async with serializer.hold("41"):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing()
    assert len(serializer) == 0
    async with serializer.hold("41"):
        assert serializer.busy("41")
