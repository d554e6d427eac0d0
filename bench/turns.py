"""Turn benchmark: what the bot adds to a conversation turn, against a floor.

One local Synapse (rate limits lifted in its config *and* per user through the
admin API), the reference agent and the bot each in their own process (see
``bench/_common.py``), simulated users as ``MatrixClient``s in this process.

Sub-benchmarks (positional, default ``profile sweep cost``; ``soak`` only when named):

* ``profile``: U users × T turns (default 5 × 20), one working room each, instant
  agent, closed loop (a room sends its next message when the previous reply is
  visible). The same load against the *floor*: a raw responder (one
  ``MatrixClient`` answering every message with one send through the same
  homeserver). Then the same rooms with ``/chunks 100`` (a 100-chunk streamed reply).
  Reports end-to-end latency (user send → first visible bot event, typing or
  text; → final text, both seen by the user's own ``/sync``), throughput, bot-added
  latency (sync arrival → agent got ``USER_MESSAGE``; agent ``END`` → final text
  send issued), bot CPU per turn and Matrix requests per turn. Then the same
  instant turns end-to-end encrypted: a second bot process (``matrix.encryption:
  true``; the first runs with ``false``) with users of their own, each with an
  E2EE device (``CryptoUser``) that encrypts its messages and decrypts the replies.
* ``sweep``: the same for 1, 10, 100, 500 concurrently active rooms (bot and floor).
  Rooms are provisioned through the product's own path: each user invites the bot
  to a DM (→ Space + ``Chat 1``), then sends ``!new`` in the DM for more rooms,
  and joins what it is invited to.
* ``cost``: bot RSS (current and peak) at 0, 100, 1,000, 5,000 working rooms (extra
  rooms via ``!new`` without the user joining, time-boxed by ``--setup-budget``)
  and bot CPU per instant turn at each size (100 active rooms × a few turns).
* ``soak``: ``--soak-turns`` instant turns (default 10,000) over 100 rooms, RSS
  sampled as it goes; memory should stay flat.

Writes ``bench/results/turns.json`` and ``bench/results/turns.md``.

    python -m bench turns                      # profile sweep cost
    python -m bench turns --quick              # small: 5×10, sweep 1,10,100, cost to 1,000
    python -m bench turns profile --users 5 --turns 20
    python -m bench turns soak --soak-turns 2000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import structlog
import trio

from bench._common import cpu_seconds, cpu_split, memory_mb, summary_ms, write_report
from matrix_client import MatrixClient, new_txn_id, text_content
from matrix_client.testing import CryptoUser, LocalSynapse, RegisteredUser, free_loopback_port

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
BOT_ID = "surfbot"
E2EE_BOT_ID = "surfbot-e2ee"
FLOOR_ID = "floor"
USER_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 50},
        "state": {"lazy_load_members": True},
        "ephemeral": {"types": ["m.typing"]},
        "account_data": {"not_types": ["*"]},
    },
}
TURN_DEADLINE_S = 120.0
#: The per-user budgets (``budget.*``) the bench bot sets out of reach.
_BUDGETS = ("TURNS", "COMMANDS", "FILES")
#: ``--spy DIR``: py-spy samples the bot during each measured phase into DIR/<tag>.txt.
SPY_DIR: Path | None = None


def say(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ---- subprocesses ---------------------------------------------------------------


@attrs.define
class Traced:
    """A bench subprocess that dumps its trace to ``trace_path`` on SIGUSR1."""

    name: str
    process: trio.Process
    trace_path: Path
    seq: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    async def collect(self) -> dict[str, list]:
        """Ask for the trace since the last collection; wait for the file."""
        self.process.send_signal(signal.SIGUSR1)
        with trio.fail_after(30):
            while True:
                await trio.sleep(0.05)
                try:
                    data = json.loads(self.trace_path.read_text())
                except (FileNotFoundError, ValueError):
                    continue
                if data.get("seq", 0) > self.seq:
                    self.seq = data["seq"]
                    return data

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await self.process.wait()
            if self.process.poll() is None:
                self.process.kill()
                await self.process.wait()


async def start_traced(name: str, argv: list[str], env: dict[str, str], work: Path) -> Traced:
    trace = work / f"{name}.trace.json"
    log = (work / f"{name}.log").open("wb")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bench._common", *argv],
        env={**os.environ, **env, "BENCH_TRACE": str(trace), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    return Traced(name, process, trace)


# ---- simulated users ---------------------------------------------------------------


@attrs.define(eq=False)
class Turn:
    tag: str
    room_id: str
    expect: str
    t0: float = 0.0
    t_sent: float | None = None
    event_id: str | None = None
    t_first: float | None = None
    t_final: float | None = None
    done: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class Room:
    room_id: str
    user: User
    responder: str  # whose reply we wait for (the bot or the floor responder)
    current: Turn | None = None


@attrs.define(eq=False)
class User:
    reg: RegisteredUser
    client: MatrixClient
    dm_room: str | None = None
    chats: list[str] = attrs.field(factory=list)  # joined working rooms (bot)
    chat_invites: set[str] = attrs.field(factory=set)
    floor_rooms: list[str] = attrs.field(factory=list)
    join_chats: bool = True
    #: The user's E2EE device, for the encrypted bot's world.
    crypto: CryptoUser | None = None


@attrs.define(eq=False)
class World:
    hs: LocalSynapse
    admin: RegisteredUser
    bot_user: str
    floor_user: str
    nursery: trio.Nursery
    stack: contextlib.AsyncExitStack
    users: list[User] = attrs.field(factory=list)
    rooms: dict[str, Room] = attrs.field(factory=dict)
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(16))
    load_cpu_s: float = 0.0
    #: Users with an E2EE device (the encrypted bot's world), named ``e2ee-user<n>``.
    e2ee: bool = False

    async def add_user(self, index: int, *, join_chats: bool = True) -> User:
        prefix = "e2ee-user" if self.e2ee else "user"
        async with self.limiter:
            reg = await self.hs.register(f"{prefix}{index}", "bench-password")
            await self.hs.lift_ratelimit(self.admin.access_token, reg.user_id)
        client = await self.stack.enter_async_context(
            MatrixClient(
                self.hs.base_url,
                access_token=reg.access_token,
                user_id=reg.user_id,
                device_id=reg.device_id,
            )
        )
        user = User(reg, client, join_chats=join_chats)
        if self.e2ee:
            user.crypto = await CryptoUser.start(client)
        self.users.append(user)
        filter_id = await client.upload_filter(USER_FILTER)
        ready = trio.Event()
        self.nursery.start_soon(self._sync_loop, user, filter_id, ready)
        await ready.wait()
        return user

    async def _sync_loop(self, user: User, filter_id: str, ready: trio.Event) -> None:
        since: str | None = None
        while True:
            response = await user.client.sync(
                since=since, timeout_ms=0 if since is None else 30_000, filter_id=filter_id
            )
            now = time.monotonic()
            since = response.next_batch
            if user.crypto is not None:
                await user.crypto.receive(response)  # the bot's room keys
            ready.set()
            for room_id, invited in response.rooms.invite.items():
                names = [
                    e.content.get("name")
                    for e in invited.invite_state.events
                    if e.type == "m.room.name"
                ]
                if names and str(names[0]).startswith("Chat ") and room_id not in user.chat_invites:
                    user.chat_invites.add(room_id)
                    if user.join_chats:
                        self.nursery.start_soon(self._join, user, room_id)
            for room_id, joined in response.rooms.join.items():
                room = self.rooms.get(room_id)
                turn = room.current if room is not None else None
                if turn is None:
                    continue
                for ev in joined.ephemeral.events:
                    ids = ev.get("content", {}).get("user_ids", [])
                    if ev.get("type") == "m.typing" and room.responder in ids:
                        turn.t_first = turn.t_first or now
                for ev in joined.timeline.events:
                    if user.crypto is not None and ev.sender == room.responder:
                        ev = user.crypto.decrypt(room_id, ev)
                    if ev.sender != room.responder or ev.type != "m.room.message":
                        continue
                    content = ev.content
                    body = content.get("m.new_content", content).get("body", "")
                    turn.t_first = turn.t_first or now
                    if str(body).rstrip().endswith(turn.expect) and turn.t_final is None:
                        turn.t_final = now
                        turn.done.set()

    async def _join(self, user: User, room_id: str) -> None:
        async with self.limiter:
            await user.client.join(room_id)
        user.chats.append(room_id)
        self.rooms[room_id] = Room(room_id, user, self.bot_user)

    async def open_dm(self, user: User) -> None:
        user.dm_room = await user.client.create_room(invite=[self.bot_user], is_direct=True)

    async def new_chats(self, user: User, n: int) -> None:
        assert user.dm_room is not None
        for _ in range(n):
            await user.client.send_event(
                user.dm_room, "m.room.message", text_content("!new"), txn_id=new_txn_id()
            )

    async def add_floor_room(self, user: User) -> None:
        async with self.limiter:
            room_id = await user.client.create_room(name="floor", invite=[self.floor_user])
        self.rooms[room_id] = Room(room_id, user, self.floor_user)
        user.floor_rooms.append(room_id)


async def floor_responder(hs: LocalSynapse, reg: RegisteredUser, joined: set[str]) -> None:
    """The floor: join every invite, answer every message with one send."""
    async with MatrixClient(
        hs.base_url, access_token=reg.access_token, user_id=reg.user_id, device_id=reg.device_id
    ) as client:
        # Like the bot: its own sends must not wake its long-poll.
        room_filter = {
            **USER_FILTER["room"],
            "ephemeral": {"not_types": ["*"]},
            "timeline": {**USER_FILTER["room"].get("timeline", {}), "not_senders": [reg.user_id]},
        }
        filter_id = await client.upload_filter({**USER_FILTER, "room": room_filter})
        async with trio.open_nursery() as nursery:

            async def join(room_id: str) -> None:
                await client.join(room_id)
                joined.add(room_id)

            async def answer(room_id: str, body: str) -> None:
                words = body.split()
                reply = f"ok {words[-1]}" if words else "ok"
                await client.send_event(
                    room_id, "m.room.message", text_content(reply), txn_id=new_txn_id()
                )

            since: str | None = None
            while True:
                response = await client.sync(
                    since=since, timeout_ms=0 if since is None else 30_000, filter_id=filter_id
                )
                for room_id in response.rooms.invite:
                    nursery.start_soon(join, room_id)
                if since is not None:
                    for room_id, room in response.rooms.join.items():
                        for ev in room.timeline.events:
                            if ev.sender != reg.user_id and ev.type == "m.room.message":
                                nursery.start_soon(answer, room_id, ev.content.get("body", ""))
                since = response.next_batch


# ---- provisioning -----------------------------------------------------------------


async def wait_until(predicate, deadline: float, what: str) -> bool:
    while not predicate():
        if time.monotonic() > deadline:
            say(f"  time budget reached while waiting for {what}")
            return False
        await trio.sleep(0.2)
    return True


def layout(n_rooms: int, max_users: int = 50) -> tuple[int, int]:
    users = max(1, min(n_rooms, max_users))
    return users, math.ceil(n_rooms / users)


async def ensure_bot_rooms(world: World, n_rooms: int, budget_s: float) -> dict[str, Any]:
    """At least ``n_rooms`` joined working rooms, spread as ``layout`` says."""
    began = time.monotonic()
    n_users, per_user = layout(n_rooms)
    async with trio.open_nursery() as nursery:
        for i in range(len(world.users), n_users):
            nursery.start_soon(world.add_user, i)
    users = world.users[:n_users]
    async with trio.open_nursery() as nursery:
        for user in users:
            if user.dm_room is None:
                nursery.start_soon(world.open_dm, user)
    deadline = began + budget_s
    if not await wait_until(
        lambda: all(u.chats for u in users), min(deadline, time.monotonic() + 120), "first chats"
    ):
        raise RuntimeError("the bot did not provision workspaces; see bot.log in the work dir")
    async with trio.open_nursery() as nursery:
        for user in users:
            want = per_user - len(user.chat_invites)
            if want > 0:
                nursery.start_soon(world.new_chats, user, want)
    await wait_until(
        lambda: (
            all(len(u.chats) >= min(per_user, len(u.chat_invites)) for u in users)
            and sum(min(len(u.chats), per_user) for u in users) >= n_rooms
        ),
        deadline,
        f"{n_rooms} joined rooms",
    )
    return {"rooms": n_rooms, "users": n_users, "setup_s": round(time.monotonic() - began, 1)}


async def ensure_floor_rooms(world: World, n_rooms: int, joined: set[str]) -> dict[str, Any]:
    began = time.monotonic()
    n_users, per_user = layout(n_rooms)
    async with trio.open_nursery() as nursery:
        for i in range(len(world.users), n_users):
            nursery.start_soon(world.add_user, i)
    async with trio.open_nursery() as nursery:
        for user in world.users[:n_users]:
            for _ in range(per_user - len(user.floor_rooms)):
                nursery.start_soon(world.add_floor_room, user)
    rooms = [r for u in world.users[:n_users] for r in u.floor_rooms]
    await wait_until(lambda: all(r in joined for r in rooms), time.monotonic() + 300, "floor")
    return {"rooms": n_rooms, "users": n_users, "setup_s": round(time.monotonic() - began, 1)}


def pick(world: World, n_rooms: int, *, floor: bool) -> list[Room]:
    """``n_rooms`` rooms, round-robin over users (so load spreads over sync loops)."""
    n_users, per_user = layout(n_rooms)
    out: list[Room] = []
    for k in range(per_user):
        for user in world.users[:n_users]:
            ids = user.floor_rooms if floor else user.chats
            if k < len(ids) and len(out) < n_rooms:
                out.append(world.rooms[ids[k]])
    return out


# ---- one measured phase -------------------------------------------------------------


async def drive(
    rooms: list[Room],
    turns: int,
    command: str,
    expect: str,
    tag: str,
    interval_s: float | None = None,
) -> list[Turn]:
    """Closed loop: each room sends its next message when the previous reply is
    visible. With ``interval_s`` also paced: room ``i`` sends no sooner than
    ``start + phase_i + k × interval_s`` (random phase), i.e. an aggregate rate of
    ``len(rooms) / interval_s`` messages/s when the system keeps up."""
    done: list[Turn] = []
    start = time.monotonic()
    rng = random.Random(1)
    phases = [rng.uniform(0, interval_s or 0) for _ in rooms]

    async def room_loop(index: int, room: Room) -> None:
        for i in range(turns):
            if interval_s is not None:
                await trio.sleep_until(
                    trio.current_time() + start + phases[index] + i * interval_s - time.monotonic()
                )
            turn = Turn(f"{tag}.{index}.{i}", room.room_id, f"{expect} {tag}.{index}.{i}")
            room.current = turn
            event_type, content = "m.room.message", text_content(f"{command} {turn.tag}".strip())
            crypto = room.user.crypto
            if crypto is not None:
                # The user's client encrypts (sharing its room key first) before the
                # clock starts: what is measured is the bot, as for a plain turn.
                settings = await crypto.encryption(room.room_id)
                assert settings is not None, "the encrypted bot's room is not encrypted"
                event_type, content = await crypto.encrypt(
                    room.room_id, event_type, content, settings
                )
            turn.t0 = time.monotonic()
            turn.event_id = await room.user.client.send_event(
                room.room_id, event_type, content, txn_id=new_txn_id()
            )
            turn.t_sent = time.monotonic()
            with trio.move_on_after(TURN_DEADLINE_S):
                await turn.done.wait()
            room.current = None
            done.append(turn)

    async with trio.open_nursery() as nursery:
        for index, room in enumerate(rooms):
            nursery.start_soon(room_loop, index, room)
    return done


def endpoint(method: str, path: str) -> str:
    parts = path.split("/")
    if path.endswith("/sync"):
        return "sync"
    if "send" in parts:
        return f"send {parts[parts.index('send') + 1]}"
    for key in ("typing", "state", "join", "invite", "createRoom", "receipt", "redact"):
        if key in parts:
            return key
    return f"{method} {'/'.join(parts[-2:])}"


async def measure(
    world: World,
    bot: Traced | None,
    agent: Traced | None,
    rooms: list[Room],
    turns: int,
    *,
    command: str = "",
    expect: str = "ok",
    tag: str,
    interval_s: float | None = None,
) -> dict[str, Any]:
    """Run ``turns`` closed-loop (optionally paced) turns in each room; everything
    we know about them."""
    if bot is not None:
        await bot.collect()  # start a fresh trace window
    if agent is not None:
        await agent.collect()
    split0 = cpu_split(bot.pid) if bot else (0.0, 0.0)
    cpu0 = sum(split0)
    hs_pid = world.hs.pid
    hs0 = cpu_seconds(hs_pid) if hs_pid else 0.0
    load0 = time.process_time()
    began = time.monotonic()
    async with spying(bot, tag):
        results = await drive(rooms, turns, command, expect, tag, interval_s)
    wall = time.monotonic() - began
    load_cpu = time.process_time() - load0
    split1 = cpu_split(bot.pid) if bot else (0.0, 0.0)
    cpu = sum(split1) - cpu0 if bot else None
    hs_cpu = cpu_seconds(hs_pid) - hs0 if hs_pid else 0.0
    ok = [t for t in results if t.t_final is not None]
    e2e_first = [t.t_first - t.t0 for t in ok if t.t_first is not None]
    e2e_final = [t.t_final - t.t0 for t in ok]
    out: dict[str, Any] = {
        "rooms": len(rooms),
        "turns_per_room": turns,
        "turns": len(results),
        "completed": len(ok),
        "wall_s": round(wall, 2),
        "turns_per_s": round(len(ok) / wall, 1) if wall else None,
        "e2e_first_visible": summary_ms(e2e_first),
        "e2e_final": summary_ms(e2e_final),
        "loadgen_cpu_share": round(load_cpu / wall, 2) if wall else None,
        "synapse_cpu_share": round(hs_cpu / wall, 2) if wall else None,
        "synapse_cpu_ms_per_turn": round(hs_cpu * 1000 / max(1, len(ok)), 2),
    }
    if bot is None or agent is None:
        return out
    btrace = await bot.collect()
    atrace = await agent.collect()
    arrivals = {e: (t_head, t_parsed) for e, t_head, t_parsed in btrace.get("arrivals", [])}
    got = {tag_: t for tag_, t in atrace.get("user_message", [])}
    agent_share = {tag_: s for tag_, s in atrace.get("agent_share", [])}
    ends = {tag_: t for tag_, t in atrace.get("end", [])}
    requests = btrace.get("requests", [])
    sends_by_room: dict[str, list[tuple[float, float]]] = {}
    labels: Counter[str] = Counter()
    for method, path, t0, t1, _status in requests:
        label = endpoint(method, path)
        labels[label] += 1
        if label in ("send m.room.message", "send m.room.encrypted"):
            room_id = unquote(path.split("/rooms/")[1].split("/")[0])
            sends_by_room.setdefault(room_id, []).append((t0, t1))
    dispatched = {e: t for e, t in btrace.get("dispatched", [])}
    turn_started = {e: t for e, t in btrace.get("turn_started", [])}
    agent_turn = {tag_: t for tag_, t in btrace.get("agent_turn", [])}
    steps: dict[str, list[float]] = {
        "parsed_to_dispatched": [],
        "dispatched_to_turn": [],
        "turn_to_agent_open": [],
        "agent_open_to_received": [],
    }
    bot_in, bot_in_own, parse, bot_out, out_done = [], [], [], [], []
    unmatched: Counter[str] = Counter()
    for t in ok:
        unmatched["no_sync_arrival"] += t.event_id not in arrivals
        unmatched["no_agent_receipt"] += t.tag not in got
        if t.event_id in arrivals and t.tag in got:
            head, parsed = arrivals[t.event_id]
            bot_in.append(got[t.tag] - head)
            bot_in_own.append(got[t.tag] - head - agent_share.get(t.tag, 0.0))
            parse.append(parsed - head)
            marks = [
                parsed,
                dispatched.get(t.event_id),
                turn_started.get(t.event_id),
                agent_turn.get(t.tag),
                got[t.tag],
            ]
            if None not in marks:
                for name, a, b in zip(steps, marks, marks[1:], strict=False):
                    steps[name].append(b - a)
        sends = [s for s in sends_by_room.get(t.room_id, []) if t.t0 <= s[0] <= t.t_final]
        if sends and t.tag in ends:
            last = max(sends)
            bot_out.append(max(0.0, last[0] - ends[t.tag]))
            out_done.append(last[1] - ends[t.tag])
    n = max(1, len(ok))
    turn_requests = sum(v for k, v in labels.items() if k != "sync")
    out.update(
        {
            "bot_in": summary_ms(bot_in),
            "bot_in_without_agent": summary_ms(bot_in_own),
            "bot_gc": {
                f"gen{g}": {
                    "count": sum(1 for gen, _ in btrace.get("gc", []) if gen == g),
                    "max_ms": round(
                        1000 * max((s for gen, s in btrace.get("gc", []) if gen == g), default=0),
                        2,
                    ),
                }
                for g in (0, 1, 2)
            },
            "bot_in_sync_parse": summary_ms(parse),
            "bot_in_steps": {name: summary_ms(v) for name, v in steps.items()},
            "bot_out": summary_ms(bot_out),
            "bot_out_until_sent": summary_ms(out_done),
            "unmatched": dict(unmatched),
            "bot_cpu_ms_per_turn": round((cpu or 0.0) * 1000 / n, 2),
            "bot_cpu_user_ms_per_turn": round((split1[0] - split0[0]) * 1000 / n, 2),
            "bot_cpu_sys_ms_per_turn": round((split1[1] - split0[1]) * 1000 / n, 2),
            "bot_cpu_share": round((cpu or 0.0) / wall, 2) if wall else None,
            "matrix_requests_per_turn": round(turn_requests / n, 2),
            "matrix_syncs_per_turn": round(labels.get("sync", 0) / n, 2),
            "matrix_requests_by_endpoint": dict(labels.most_common()),
        }
    )
    out.update(memory_mb(bot.pid))
    return out


@contextlib.asynccontextmanager
async def spying(bot: Traced | None, tag: str):  # type: ignore[no-untyped-def]
    """With ``--spy DIR``: py-spy samples the bot while the block runs (flamegraph
    input, ``--format raw``). The sampler costs the bot nothing while attached but a
    few percent of one CPU, so don't compare CPU figures of spied runs."""
    if SPY_DIR is None or bot is None:
        yield
        return
    out = SPY_DIR / f"{tag}.txt"
    py_spy = str(Path(sys.executable).parent / "py-spy")
    spy = await trio.lowlevel.open_process(
        [py_spy, "record", "-p", str(bot.pid), "-r", "250", "-f", "raw", "--nonblocking",
         "-o", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        with trio.move_on_after(30):
            await spy.wait()
        if spy.poll() is None:
            spy.kill()
        say(f"  py-spy samples: {out}")


def brief(name: str, r: dict[str, Any]) -> str:
    line = (
        f"{name}: {r['completed']}/{r['turns']} turns, {r['turns_per_s']} turns/s, "
        f"e2e final p50 {r['e2e_final']['p50_ms']} p99 {r['e2e_final']['p99_ms']} ms"
    )
    if "bot_in" in r:
        line += (
            f", bot in p50/p99 {r['bot_in']['p50_ms']}/{r['bot_in']['p99_ms']} ms"
            f" (without the agent's accept+STATUS {r['bot_in_without_agent']['p50_ms']}"
            f"/{r['bot_in_without_agent']['p99_ms']})"
            f", out {r['bot_out']['p50_ms']}/{r['bot_out']['p99_ms']} ms"
            f", cpu {r['bot_cpu_ms_per_turn']} ms/turn (user {r['bot_cpu_user_ms_per_turn']}"
            f" sys {r['bot_cpu_sys_ms_per_turn']}), {r['matrix_requests_per_turn']} req/turn"
        )
    return line


# ---- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "turns",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: v for k, v in vars(args).items() if k not in ("output", "spy")},
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "matrix-synapse": version("matrix-synapse"),
            "trio": version("trio"),
            "httpx": version("httpx"),
        },
    }
    work = Path(tempfile.mkdtemp(prefix="bench-turns-"))
    report["work_dir"] = str(work)
    say(f"work dir {work}")
    async with LocalSynapse.running(work / "synapse", ratelimits="lifted") as hs:
        report["synapse_startup_s"] = round(hs.startup_s or 0.0, 2)
        admin = await hs.register("bench-admin", "bench-admin-password", admin=True)
        bot_reg = await hs.register(BOT_ID, "bot-password", displayname="Surfaces")
        e2ee_reg = await hs.register(E2EE_BOT_ID, "bot-password", displayname="Surfaces E2EE")
        floor_reg = await hs.register(FLOOR_ID, "floor-password")
        for reg in (bot_reg, e2ee_reg, floor_reg):
            await hs.lift_ratelimit(admin.access_token, reg.user_id)
        agent_port = free_loopback_port()
        (work / "agents").mkdir()
        agent = await start_traced(
            "agent", ["agent", str(agent_port), str(work / "agents"), "instant"], {}, work
        )
        env = {
            "MATRIX_HOMESERVER": hs.base_url,
            "MATRIX_USER_ID": bot_reg.user_id,
            "MATRIX_PASSWORD": "bot-password",
            "AGENT_BASE_URL": f"http://127.0.0.1:{agent_port}/",
            "SURFACES_STATE_DIR": str(work / "bot-state"),
            "SURFACES_WORKSPACE_DIR": str(work / "agents"),
            "SURFACES_BOT__LOCALE": "en",
            "SURFACES_LOG__LEVEL": args.bot_log_level,
            "SURFACES_MATRIX__ENCRYPTION": "false",
            # Each simulated user sends far more than a person would (a turn as soon as
            # the last is answered, !new for the cost phase): the per-user budgets would
            # reject them and the phase would wait for answers that never come.
            **{f"SURFACES_BUDGET__{b}_PER_MINUTE": "1000000" for b in _BUDGETS},
            **{f"SURFACES_BUDGET__{b}_BURST": "1000000" for b in _BUDGETS},
            **dict(kv.split("=", 1) for kv in args.bot_env),
        }
        await trio.sleep(1.0)
        bot = await start_traced("bot", ["bot"], env, work)
        e2ee_bot: Traced | None = None
        if "profile" in args.benchmarks and not args.no_e2ee:
            e2ee_env = {
                **env,
                "MATRIX_USER_ID": e2ee_reg.user_id,
                "SURFACES_STATE_DIR": str(work / "bot-e2ee-state"),
                "SURFACES_MATRIX__ENCRYPTION": "true",
            }
            e2ee_bot = await start_traced("bot-e2ee", ["bot"], e2ee_env, work)
        try:
            for traced in (bot, e2ee_bot):
                if traced is not None:
                    await wait_started(traced, work / f"{traced.name}.log")
            await trio.sleep(2.0)
            report["rss_idle_0_rooms"] = memory_mb(bot.pid)
            say("bot up; RSS at 0 rooms", report["rss_idle_0_rooms"])
            floor_joined: set[str] = set()
            async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as nursery:
                nursery.start_soon(floor_responder, hs, floor_reg, floor_joined)
                world = World(hs, admin, bot_reg.user_id, floor_reg.user_id, nursery, stack)
                e2ee_world = None
                if e2ee_bot is not None:
                    e2ee_world = World(
                        hs, admin, e2ee_reg.user_id, floor_reg.user_id, nursery, stack, e2ee=True
                    )
                await phases(
                    args, world, bot, agent, floor_joined, report, e2ee=(e2ee_world, e2ee_bot)
                )
                nursery.cancel_scope.cancel()
        finally:
            report["bot_final_memory"] = memory_mb(bot.pid) if bot.process.poll() is None else None
            await bot.stop()
            if e2ee_bot is not None:
                await e2ee_bot.stop()
            await agent.stop()
    return report


async def wait_started(bot: Traced, log: Path) -> None:
    text = trio.Path(log)
    with trio.fail_after(60):
        while not (await text.read_text(errors="replace")).count("bot_started"):
            if bot.process.poll() is not None:
                raise RuntimeError((await text.read_text())[-3000:])
            await trio.sleep(0.1)


async def phases(
    args, world: World, bot: Traced, agent: Traced, floor_joined, report, *, e2ee
) -> None:
    wanted = set(args.benchmarks)
    setup: list[dict[str, Any]] = []
    report["setup"] = setup
    if "profile" in wanted:
        u, t = args.users, args.turns
        say(f"profile: {u} users × {t} turns")
        setup.append({"what": "bot rooms", **await ensure_bot_rooms(world, u, args.setup_budget)})
        setup.append({"what": "floor rooms", **await ensure_floor_rooms(world, u, floor_joined)})
        rooms = pick(world, u, floor=False)
        await measure(world, bot, agent, rooms, 2, tag="warm")  # connections, caches
        prof: dict[str, Any] = {}
        prof["floor"] = await measure(world, None, None, pick(world, u, floor=True), t, tag="pf")
        say(brief("  floor", prof["floor"]))
        prof["bot_instant"] = await measure(world, bot, agent, rooms, t, tag="pi")
        say(brief("  bot instant", prof["bot_instant"]))
        prof["bot_chunks100"] = await measure(
            world,
            bot,
            agent,
            rooms,
            max(2, t // 2),
            command="/chunks 100",
            expect="chunk 100/100",
            tag="pc",
        )
        say(brief("  bot /chunks 100", prof["bot_chunks100"]))
        e2ee_world, e2ee_bot = e2ee
        if e2ee_world is not None and e2ee_bot is not None:
            info = await ensure_bot_rooms(e2ee_world, u, args.setup_budget)
            setup.append({"what": "encrypted bot rooms", **info})
            e2ee_rooms = pick(e2ee_world, u, floor=False)
            await measure(e2ee_world, e2ee_bot, agent, e2ee_rooms, 2, tag="warme")
            prof["bot_instant_e2ee"] = await measure(
                e2ee_world, e2ee_bot, agent, e2ee_rooms, t, tag="pe"
            )
            say(brief("  bot instant, E2EE", prof["bot_instant_e2ee"]))
            # The plain bot again right after: the two E2EE-vs-plain rows in one window.
            prof["bot_instant_again"] = await measure(world, bot, agent, rooms, t, tag="pj")
            say(brief("  bot instant (again)", prof["bot_instant_again"]))
        report["profile"] = prof
    if "sweep" in wanted:
        sweep: dict[str, Any] = {}
        report["sweep"] = sweep
        for n in args.sweep:
            turns = max(3, min(20, 1000 // n))
            say(f"sweep: {n} rooms × {turns} turns")
            info = await ensure_bot_rooms(world, n, args.setup_budget)
            setup.append({"what": "bot rooms", **info})
            rooms = pick(world, n, floor=False)
            if len(rooms) < n:
                say(f"  only {len(rooms)} rooms ready")
            entry: dict[str, Any] = {"setup": info}
            entry["bot"] = await measure(world, bot, agent, rooms, turns, tag=f"s{n}")
            say(brief("  bot", entry["bot"]))
            if n <= args.floor_max:
                finfo = await ensure_floor_rooms(world, n, floor_joined)
                setup.append({"what": "floor rooms", **finfo})
                entry["floor"] = await measure(
                    world, None, None, pick(world, n, floor=True), turns, tag=f"f{n}"
                )
                say(brief("  floor", entry["floor"]))
            sweep[str(n)] = entry
    if "paced" in wanted:
        paced: dict[str, Any] = {}
        report["paced"] = paced
        for n in args.paced_rooms:
            interval = n / args.paced_rate
            say(f"paced: {n} rooms, {args.paced_rate} messages/s, {args.paced_turns} turns each")
            info = await ensure_bot_rooms(world, n, args.setup_budget)
            setup.append({"what": "bot rooms", **info})
            rooms = pick(world, n, floor=False)
            entry = await measure(
                world, bot, agent, rooms, args.paced_turns, tag=f"p{n}", interval_s=interval
            )
            entry["rate_per_s"] = args.paced_rate
            say(brief("  bot", entry))
            paced[str(n)] = entry
    if "cost" in wanted:
        await cost(args, world, bot, agent, report)
    if "soak" in wanted:
        await soak(args, world, bot, agent, report)


def working_rooms(world: World) -> int:
    return sum(len(u.chat_invites) for u in world.users)


async def cost(args, world: World, bot: Traced, agent: Traced, report) -> None:
    out: dict[str, Any] = {"0": {"rooms": 0, **report["rss_idle_0_rooms"]}}
    report["cost"] = out
    active = pick(world, 100, floor=False)
    if len(active) < 100:
        await ensure_bot_rooms(world, 100, args.setup_budget)
        active = pick(world, 100, floor=False)
    for target in [100, *args.cost_rooms]:
        began = time.monotonic()
        if working_rooms(world) < target:
            say(f"cost: growing to {target} working rooms (budget {args.setup_budget} s)")
            # Extra users (each with a DM lane) spread the !new commands.
            extra_users = max(0, min(100, target // 50) - len(world.users))
            async with trio.open_nursery() as nursery:
                base = len(world.users)
                for i in range(extra_users):
                    nursery.start_soon(world.add_user, base + i)
            fresh = [u for u in world.users if u.dm_room is None]
            for u in world.users:
                u.join_chats = False  # the extra rooms only need to exist
            async with trio.open_nursery() as nursery:
                for u in fresh:
                    nursery.start_soon(world.open_dm, u)
            await wait_until(
                lambda fresh=fresh: all(u.chat_invites for u in fresh), began + 120, "DMs"
            )
            missing = target - working_rooms(world)
            per = math.ceil(missing / len(world.users))
            async with trio.open_nursery() as nursery:
                for u in world.users:
                    nursery.start_soon(world.new_chats, u, per)
            await wait_until(
                lambda target=target: working_rooms(world) >= target,
                began + args.setup_budget,
                f"{target} rooms",
            )
        reached = working_rooms(world)
        setup_s = round(time.monotonic() - began, 1)
        await trio.sleep(3)  # let the bot settle (lanes idle)
        r = await measure(world, bot, agent, active, 5, tag=f"c{target}")
        entry = {
            "rooms": reached,
            "setup_s": setup_s,
            "rooms_per_s": (
                round((reached - 100) / setup_s, 1) if target > 100 and setup_s else None
            ),
            "bot_cpu_ms_per_turn": r["bot_cpu_ms_per_turn"],
            "e2e_final_p50_ms": r["e2e_final"]["p50_ms"],
            "bot_in_p99_ms": r["bot_in"]["p99_ms"],
            **memory_mb(bot.pid),
        }
        out[str(target)] = entry
        say(f"  {reached} rooms: {entry}")


async def soak(args, world: World, bot: Traced, agent: Traced, report) -> None:
    rooms = pick(world, 100, floor=False)
    if len(rooms) < 100:
        await ensure_bot_rooms(world, 100, args.setup_budget)
        rooms = pick(world, 100, floor=False)
    per_room = max(1, args.soak_turns // len(rooms))
    steps = 10
    samples = []
    say(f"soak: {per_room * len(rooms)} turns over {len(rooms)} rooms")
    began = time.monotonic()
    cpu0 = cpu_seconds(bot.pid)
    for step in range(steps):
        n = per_room // steps + (1 if step < per_room % steps else 0)
        if n == 0:
            continue
        results = await drive(rooms, n, "", "ok", f"k{step}")
        await bot.collect()  # the bench trace is not the bot's memory: drop it
        await agent.collect()
        samples.append(
            {
                "turns_done": (samples[-1]["turns_done"] if samples else 0) + len(results),
                "completed": sum(1 for t in results if t.t_final is not None),
                "elapsed_s": round(time.monotonic() - began, 1),
                **memory_mb(bot.pid),
            }
        )
        say(f"  soak {samples[-1]}")
    total = samples[-1]["turns_done"] if samples else 0
    report["soak"] = {
        "turns": total,
        "rooms": len(rooms),
        "samples": samples,
        "bot_cpu_ms_per_turn": round((cpu_seconds(bot.pid) - cpu0) * 1000 / max(1, total), 2),
        "rss_growth_mb": (
            round(samples[-1]["rss_mb"] - samples[0]["rss_mb"], 1) if samples else None
        ),
    }


# ---- report ---------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "n/a"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Turn benchmark ({report['when']})", ""]
    env = report["environment"]
    lines.append(
        f"Python {env['python']}, {env['cpus']} CPUs, Synapse {env['matrix-synapse']} (SQLite, "
        f"rate limits lifted), instant reference agent. Latencies in ms."
    )
    lines.append("")
    row = "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |"
    head = row.format(
        "run",
        "rooms×turns",
        "turns/s",
        "first p50",
        "final p50",
        "final p99",
        "bot in p50/p99",
        "bot in w/o agent p50/p99",
        "bot out p50/p99",
        "CPU ms/turn",
        "req/turn",
        "vs floor (p50, tput)",
    )
    lines += [head, "|" + "---|" * 12]

    def add(name: str, r: dict[str, Any], floor: dict[str, Any] | None) -> None:
        vs = "—"
        if floor is not None:
            vs = (
                f"{ratio(r['e2e_final']['p50_ms'], floor['e2e_final']['p50_ms'])}, "
                f"{ratio(r['turns_per_s'], floor['turns_per_s'])}"
            )
        bi = r.get("bot_in", {})
        bw = r.get("bot_in_without_agent", {})
        bo = r.get("bot_out", {})
        lines.append(
            row.format(
                name,
                f"{r['rooms']}×{r['turns_per_room']}",
                r["turns_per_s"],
                r["e2e_first_visible"]["p50_ms"],
                r["e2e_final"]["p50_ms"],
                r["e2e_final"]["p99_ms"],
                f"{bi.get('p50_ms', '—')}/{bi.get('p99_ms', '—')}",
                f"{bw.get('p50_ms', '—')}/{bw.get('p99_ms', '—')}",
                f"{bo.get('p50_ms', '—')}/{bo.get('p99_ms', '—')}",
                r.get("bot_cpu_ms_per_turn", "—"),
                r.get("matrix_requests_per_turn", "—"),
                vs,
            )
        )

    prof = report.get("profile")
    if prof:
        add("floor", prof["floor"], None)
        add("bot instant", prof["bot_instant"], prof["floor"])
        add("bot /chunks 100", prof["bot_chunks100"], None)
        if "bot_instant_e2ee" in prof:
            add("bot instant, E2EE", prof["bot_instant_e2ee"], prof["floor"])
            add("bot instant (again)", prof["bot_instant_again"], prof["floor"])
    for n, entry in report.get("sweep", {}).items():
        if "floor" in entry:
            add(f"floor {n} rooms", entry["floor"], None)
        add(f"bot {n} rooms", entry["bot"], entry.get("floor"))
    for n, entry in report.get("paced", {}).items():
        add(f"bot {n} rooms paced at {entry['rate_per_s']}/s", entry, None)
    lines.append("")
    if report.get("cost"):
        lines += [
            "| working rooms | setup s | RSS MB | peak RSS MB | CPU ms/turn (100 active) |",
            "|---|---|---|---|---|",
        ]
        for entry in report["cost"].values():
            lines.append(
                f"| {entry['rooms']} | {entry.get('setup_s', '—')} | {entry['rss_mb']} | "
                f"{entry['peak_rss_mb']} | {entry.get('bot_cpu_ms_per_turn', '—')} |"
            )
        lines.append("")
    if report.get("soak"):
        s = report["soak"]
        lines.append(
            f"Soak: {s['turns']} turns over {s['rooms']} rooms, RSS growth "
            f"{s['rss_growth_mb']} MB (samples: "
            + ", ".join(f"{x['turns_done']}→{x['rss_mb']}" for x in s["samples"])
            + f"), {s['bot_cpu_ms_per_turn']} CPU ms/turn."
        )
        lines.append("")
    setup = report.get("setup", [])
    if setup:
        lines.append(
            "Setup: "
            + "; ".join(
                f"{s['what']} {s['rooms']} ({s['users']} users) {s['setup_s']} s" for s in setup
            )
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench turns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmarks", nargs="*", help="profile sweep paced cost soak")
    parser.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    parser.add_argument("--users", type=int, default=5, help="profile: users (one room each)")
    parser.add_argument("--turns", type=int, default=20, help="profile: turns per room")
    parser.add_argument(
        "--sweep",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 100, 500],
        help="active room counts",
    )
    parser.add_argument(
        "--floor-max", type=int, default=500, help="largest sweep size also run against the floor"
    )
    parser.add_argument(
        "--cost-rooms",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1000, 5000],
        help="working room counts for RSS",
    )
    parser.add_argument(
        "--setup-budget",
        type=float,
        default=600.0,
        help="seconds allowed for provisioning each size",
    )
    parser.add_argument("--soak-turns", type=int, default=10_000)
    parser.add_argument(
        "--paced-rooms",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100],
        help="paced: active room counts",
    )
    parser.add_argument(
        "--paced-rate", type=float, default=8.0, help="paced: messages/s over all rooms"
    )
    parser.add_argument("--paced-turns", type=int, default=4, help="paced: turns per room")
    parser.add_argument("--bot-log-level", default="info")
    parser.add_argument(
        "--no-e2ee", action="store_true", help="profile: skip the end-to-end encrypted turns"
    )
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra bot environment (e.g. BENCH_CPROFILE=/tmp/bot.pstats: profile the bot)",
    )
    parser.add_argument(
        "--spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the bot with py-spy during each measured phase (DIR/<tag>.txt)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "turns.json")
    args = parser.parse_args()
    global SPY_DIR
    SPY_DIR = args.spy
    if SPY_DIR is not None:
        SPY_DIR.mkdir(parents=True, exist_ok=True)
    if not args.benchmarks:
        args.benchmarks = ["profile", "sweep", "paced", "cost"]
    unknown = set(args.benchmarks) - {"profile", "sweep", "paced", "cost", "soak"}
    if unknown:
        parser.error(f"unknown sub-benchmark(s): {', '.join(sorted(unknown))}")
    if args.quick:
        args.turns = min(args.turns, 10)
        args.sweep = [1, 10, 100]
        args.cost_rooms = [1000]
        args.soak_turns = min(args.soak_turns, 1000)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    report = trio.run(run, args)
    write_report(args.output, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
