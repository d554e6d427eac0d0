"""The prober's schedule, bounds and results, and the board's waiters, on virtual time."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import trio

from agent_client import AgentClient
from surfaces.agents import (
    PROBE_CHAT_ID_BASE,
    PresenceBoard,
    PresenceState,
    Prober,
    TurnOutcome,
    next_delay,
    probe_limits,
)
from surfaces.config import AgentsConfig, AgentSpec, PresenceConfig


def specs(n: int) -> list[AgentSpec]:
    return [
        AgentSpec(f"agent-{i}", f"Agent {i}", f"http://agent.test/agent_{i}/", Path("/w"))
        for i in range(n)
    ]


def prober_for(target, agents, **presence) -> tuple[Prober, PresenceBoard]:
    board = PresenceBoard([a.id for a in agents])
    client = AgentClient(
        probe_limits(AgentsConfig(connect_timeout_s=2.0, status_timeout_s=3.0)),
        connector=target.connect,
    )
    cfg = PresenceConfig(**presence)
    return Prober(board, client, agents, cfg, rng=random.Random(7)), board


def test_next_delay_stays_within_the_jitter():
    rng = random.Random(1)
    delays = [next_delay(30.0, 5.0, rng) for _ in range(10_000)]
    assert min(delays) >= 25.0
    assert max(delays) <= 35.0
    assert min(delays) < 25.5
    assert max(delays) > 34.5
    assert next_delay(30.0, 0.0, rng) == 30.0


async def test_probes_every_interval_with_jitter(target, autojump_clock):
    prober, board = prober_for(target, specs(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    times = target.connects
    assert times[0] <= 5.0  # the first probe comes within the jitter of the start
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps
    assert all(25.0 <= g <= 35.0 + 0.1 for g in gaps), gaps
    assert 600 / 35 <= len(times) <= 600 / 25 + 1
    assert prober.probes == len(times)
    assert board.state("agent-0") is PresenceState.ONLINE
    # probes use their own chat ids, apart from real chats and check-agents
    assert target.paths[0] == f"/agent_0/v1/agent_ws/{PROBE_CHAT_ID_BASE}/"


async def test_concurrency_is_bounded(target, autojump_clock):
    target.status_delay_s = 2.0  # every probe takes 2 s
    prober, board = prober_for(target, specs(6), probe_concurrency=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert target.max_in_flight == 2
    assert all(state is PresenceState.ONLINE for _, state in board.states())


async def test_unreachable_then_back_wakes_waiters(target, autojump_clock):
    target.down = True
    prober, board = prober_for(target, specs(1))
    woke: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(6)
        assert board.state("agent-0") is PresenceState.OFFLINE
        assert board.seen_ago("agent-0") is None

        async def waiter() -> None:
            await board.wait_up("agent-0")
            woke.append(trio.current_time())

        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.sleep(60)
        assert woke == []
        target.down = False
        back_at = trio.current_time()
        await trio.sleep(40)
        nursery.cancel_scope.cancel()
    assert len(woke) == 2
    assert all(back_at < t <= back_at + 36 for t in woke)
    assert board.state("agent-0") is PresenceState.ONLINE


async def test_slow_status_is_away(target, autojump_clock):
    target.status_delay_s = 2.5
    prober, board = prober_for(target, specs(1), away_status_s=1.0)
    board = prober.board = PresenceBoard(["agent-0"], thresholds_from(away_status_s=1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert board.state("agent-0") is PresenceState.AWAY
    presence = board.get("agent-0")
    assert presence is not None
    assert 2.4 < (presence.status_latency_s or 0) < 2.6


async def test_status_past_its_deadline_is_offline(target, autojump_clock):
    target.status_delay_s = 100.0  # past status_timeout_s (3 s)
    prober, board = prober_for(target, specs(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert board.state("agent-0") is PresenceState.OFFLINE


async def test_a_turn_counts_as_a_probe(target, autojump_clock):
    prober, board = prober_for(target, specs(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(6)
        assert len(target.connects) == 1
        # Real turns every 20 s: the prober has nothing to add.
        for _ in range(10):
            board.observe_turn("agent-0", TurnOutcome.OK)
            last_turn = trio.current_time()
            await trio.sleep(20)
        assert len(target.connects) == 1
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    # then probing resumes, an interval (± jitter) after the last turn
    assert len(target.connects) == 2
    assert last_turn + 25 <= target.connects[1] <= last_turn + 35


async def test_board_announces_changes_once_and_ignores_unknown_agents(autojump_clock):
    seen: list[tuple[str, PresenceState]] = []
    board = PresenceBoard(["a", "b"], on_change=lambda a, s: seen.append((a, s)))
    assert seen == [("a", PresenceState.UNKNOWN), ("b", PresenceState.UNKNOWN)]
    version = board.version
    board.observe_probe("a", ok=True, status_s=0.01)
    board.observe_probe("a", ok=True, status_s=0.01)  # no change: no announcement
    board.observe_probe("zzz", ok=False)  # not in the registry: ignored
    assert seen[2:] == [("a", PresenceState.ONLINE)]
    assert await board.wait_changed(version) == version + 1
    assert board.state("zzz") is PresenceState.UNKNOWN
    with trio.move_on_after(1) as waited:
        await board.wait_up("zzz")  # unknown agent: nothing to wait for
    assert not waited.cancelled_caught


def thresholds_from(**kwargs):
    from surfaces.agents import Thresholds

    return Thresholds(**kwargs)


async def test_no_jitter_probes_exactly_on_the_interval(target, autojump_clock):
    prober, _ = prober_for(target, specs(1), probe_jitter_s=0.0, probe_interval_s=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        await trio.sleep(35)
        nursery.cancel_scope.cancel()
    start = target.connects[0]
    assert [round(t - start, 3) for t in target.connects] == [0.0, 10.0, 20.0, 30.0]


async def test_concurrent_rechecks_of_one_agent_share_one_probe(target, autojump_clock):
    """Messages in 50 rooms for an agent known to be offline: each turn asks for a
    re-check, and the agent host sees one connection attempt, not 50."""
    agents = specs(1)
    prober, board = prober_for(target, agents)
    target.down = True
    board.observe_probe("agent-0", ok=False)
    await trio.sleep(10)  # the last probe is a while ago
    target.connects.clear()
    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(prober.recheck, "agent-0")
    assert len(target.connects) == 1
    assert board.state("agent-0") is PresenceState.OFFLINE
    # Right after a probe another re-check has nothing to learn; a later one probes.
    target.down = False
    await prober.recheck("agent-0")
    assert len(target.connects) == 1
    await trio.sleep(2)
    await prober.recheck("agent-0")
    assert len(target.connects) == 2
    assert board.state("agent-0") is PresenceState.ONLINE
