"""Crash/restart: the real bot process (``python -m surfaces run``) killed and restarted.

The bot runs as a subprocess configured from environment variables only, against the
session's Synapse; the reference agent runs in the test process (its memory outlives
the bot, as a real agent's does). Simulated users talk to the bot while a *crasher*
task SIGKILLs it at chosen points and starts it again:

* ``mid_stream``  — a streamed reply's first message is visible, the rest is not;
* ``after_final`` — right after a reply's complete text became visible (the window
  between the final send and its bookkeeping);
* ``after_send``  — right after a user message was accepted by the homeserver (the
  window between the event and its admission to the inbox);
* ``timer``       — at a random moment while turns are running.

Whatever the timing, each user message must end up with exactly ONE bot reply
message whose final shown text (edits applied) is complete, and the state database
must pass ``PRAGMA integrity_check`` after every kill. The bot runs with its default
configuration, so the chats are end-to-end encrypted: the users have E2EE devices
(``SimUser``), and a kill may land between any crypto commit and its send too.
SIGTERM exits with code 0 within the shutdown grace period, letting a running turn
finish.
"""

from __future__ import annotations

import collections
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial
from pathlib import Path

import attrs
import pytest
import structlog
import trio
from bot_process import BotProcess, bot_env
from e2e_users import Shown, SimUser, after, describe, replies_per_message

from agent_client.reference import ReferenceAgent, serve_reference_agent
from matrix_client.testing import LocalSynapse, RegisteredUser

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

log = structlog.get_logger(__name__)

USERS = 3
MESSAGES = 4  # per user: echo, slow, echo, slow
KILL_PLAN = {"mid_stream": 2, "after_final": 1, "after_send": 1, "timer": 1}
REPLY_S = 90  # one reply, allowing for restarts of the bot in between
ONBOARD_S = 60
GRACE_S = 8
EXTRA_TURNS = 4
SLOW = "/slow 0.4 8"
SLOW_TEXT = " ".join(f"slow {i}/8" for i in range(1, 9))
SEED = random.randrange(1_000_000)


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of the bot's database (``ok`` when healthy)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return ";".join(row[0] for row in conn.execute("PRAGMA integrity_check").fetchall())
    finally:
        conn.close()


def echo_pattern(text: str) -> re.Pattern[str]:
    return re.compile(
        rf"Turn \d+\. You said: «{re.escape(text)}»\. "
        r"(?:This is the first message of this chat\.|Previously you said: «.*»\.)",
        re.DOTALL,
    )


def is_complete(prompt: str, body: str) -> bool:
    if prompt == SLOW:
        return body == SLOW_TEXT
    return echo_pattern(prompt).fullmatch(body) is not None


@attrs.define
class Crasher:
    """Kills and restarts the bot when user tasks report a planned kill point."""

    bot: BotProcess
    db: Path
    plan: collections.Counter[str]
    rng: random.Random
    send: trio.MemorySendChannel[str]
    recv: trio.MemoryReceiveChannel[str]
    kills: list[str] = attrs.field(factory=list)
    checks: list[str] = attrs.field(factory=list)
    restarts_s: list[float] = attrs.field(factory=list)

    def reached(self, point: str) -> None:
        """Called by user tasks; never blocks (a full channel drops the signal)."""
        if self.plan[point] > 0:
            with suppress(trio.WouldBlock):
                self.send.send_nowait(point)

    def remaining(self) -> int:
        return sum(self.plan.values())

    async def crash(self, point: str) -> None:
        self.plan[point] -= 1
        await self.bot.kill()
        self.kills.append(point)
        self.checks.append(integrity(self.db))
        began = time.monotonic()
        await self.bot.start()
        self.restarts_s.append(time.monotonic() - began)
        log.info("crash_restart_done", point=point, kills=len(self.kills))
        while True:  # signals from before the restart are stale
            try:
                self.recv.receive_nowait()
            except trio.WouldBlock:
                break

    async def run(self, turns_started: trio.Event) -> None:
        async with trio.open_nursery() as nursery:

            async def timer() -> None:
                await turns_started.wait()
                while self.plan["timer"] > 0:  # again if dropped as stale by a restart
                    await trio.sleep(self.rng.uniform(0.3, 2.0))
                    self.reached("timer")

            nursery.start_soon(timer)
            while self.remaining():
                point = await self.recv.receive()
                if self.plan[point] > 0:
                    await self.crash(point)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def crash_setup(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> AsyncIterator[tuple[BotProcess, RegisteredUser, ReferenceAgent]]:
    """The bot process (not started) and the reference agent (serving)."""
    account = await make_user("bot", displayname="Surfaces")
    workspace = tmp_path / "agents"
    workspace.mkdir()
    agent = ReferenceAgent(workspace, chunk_delay_s=0.02)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            partial(serve_reference_agent, agent=agent), "127.0.0.1", 0, workspace
        )
        env = bot_env(
            homeserver=synapse.base_url,
            user_id=account.user_id,
            password=account.password,
            agent_base_url=f"http://127.0.0.1:{port}/agent_0/",
            workspace_dir=workspace,
            state_dir=tmp_path / "state",
            SURFACES_BOT__SHUTDOWN_GRACE_S=str(GRACE_S),
            SURFACES_MATRIX__SYNC_LONG_POLL_S="10",
        )
        bot = BotProcess(env=env, log_dir=tmp_path / "logs")
        try:
            yield bot, account, agent
        finally:
            with trio.CancelScope(shield=True):
                await bot.kill()
            nursery.cancel_scope.cancel()


async def wait_complete(
    user: SimUser, room: str, sent: str, bot_id: str, prompt: str, crasher: Crasher | None
) -> Shown:
    """Poll until the bot's reply to ``sent`` shows complete text; report kill points."""
    partial_seen = False
    while True:
        shown = await user.shown(room)
        user.last_shown[room] = shown
        replies = [m for m in after(shown, sent) if m.sender == bot_id and m.msgtype == "m.text"]
        done = [m for m in replies if is_complete(prompt, m.body)]
        if done:
            if crasher is not None:
                crasher.reached("after_final")
            return done[0]
        if replies and not partial_seen and prompt == SLOW and crasher is not None:
            partial_seen = True
            crasher.reached("mid_stream")
        await trio.sleep(0.1)


async def converse(
    user: SimUser, room: str, bot_id: str, prompts: list[str], crasher: Crasher | None
) -> None:
    for prompt in prompts:
        try:
            with trio.fail_after(REPLY_S):
                sent = await user.send_text(room, prompt)
                if crasher is not None:
                    crasher.reached("after_send")
                await wait_complete(user, room, sent, bot_id, prompt, crasher)
        except trio.TooSlowError:
            raise AssertionError(
                f"{user.user_id}: no complete reply to {prompt!r} within {REPLY_S} s:\n"
                + describe(user.last_shown.get(room, []))
            ) from None


def check_room(shown: list[Shown], user_id: str, bot_id: str, prompts: list[str]) -> None:
    """Exactly one reply message per user message, each showing complete text."""
    per_message = replies_per_message(shown, user_id, bot_id)
    assert [m.body for m, _ in per_message] == prompts, describe(shown)
    for message, replies in per_message:
        assert len(replies) == 1, f"{len(replies)} replies to {message.body!r}:\n{describe(shown)}"
        assert is_complete(message.body, replies[0].body), (
            f"incomplete reply to {message.body!r}: {replies[0].body!r}"
        )


async def test_sigkill_at_chosen_points_gives_exactly_one_complete_reply(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    log.info("crash_test_seed", seed=SEED)
    async with crash_setup(synapse, make_user, tmp_path) as (bot, account, agent):
        bot_id = account.user_id
        db = Path(bot.env["SURFACES_STATE_DIR"]) / "surfaces.db"
        await bot.start()
        send, recv = trio.open_memory_channel[str](64)
        crasher = Crasher(bot, db, collections.Counter(KILL_PLAN), rng, send, recv)
        turns_started = trio.Event()
        prompts = {}
        rooms = {}

        async with open_users(synapse, make_user, USERS) as users:
            # Onboarding without kills: one Space and one chat each.
            async with trio.open_nursery() as nursery:

                async def onboard(user: SimUser) -> None:
                    with trio.fail_after(ONBOARD_S):
                        rooms[user.user_id] = (await user.onboard(bot_id)).chat_id
                        encryption = await user.state(rooms[user.user_id], "m.room.encryption")
                    assert encryption, "the bot's chats are encrypted by default"

                for user in users:
                    nursery.start_soon(onboard, user)

            for n, user in enumerate(users):
                prompts[user.user_id] = [
                    SLOW if k % 2 else f"user {n} message {k}" for k in range(MESSAGES)
                ]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(crasher.run, turns_started)

                async def talk(user: SimUser) -> None:
                    await converse(
                        user, rooms[user.user_id], bot_id, prompts[user.user_id], crasher
                    )

                async with trio.open_nursery() as talkers:
                    for user in users:
                        talkers.start_soon(talk, user)
                    turns_started.set()
                # Streams are short: if a planned kill point did not come up, give it
                # a few more turns (bounded), checked like the others below.
                extra_user = users[0]
                for _ in range(EXTRA_TURNS):
                    if not crasher.remaining():
                        break
                    prompts[extra_user.user_id].append(SLOW)
                    await converse(extra_user, rooms[extra_user.user_id], bot_id, [SLOW], crasher)
                # Every planned kill must have happened while the users talked.
                assert not crasher.remaining(), (
                    f"kills left over {dict(crasher.plan)}; done: {crasher.kills}"
                )

            assert len(crasher.kills) == sum(KILL_PLAN.values()), crasher.kills
            assert crasher.checks == ["ok"] * len(crasher.kills), crasher.checks

            # The final state: one complete reply per message, nothing doubled.
            for user in users:
                with trio.fail_after(30):
                    shown = await user.shown(rooms[user.user_id])
                check_room(shown, user.user_id, bot_id, prompts[user.user_id])

            # A graceful stop after all that: exit code 0, database intact.
            code = await bot.terminate(timeout_s=GRACE_S + 15)
            assert code == 0, f"exit code {code}:\n{bot.log_tail()}"
            assert integrity(db) == "ok"
            log.info(
                "crash_test_summary",
                seed=SEED,
                kills=crasher.kills,
                restart_s=[round(s, 2) for s in crasher.restarts_s],
                agent_turns=agent.turns_served,
            )


async def test_sigterm_lets_the_running_turn_finish_and_exits_zero(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with crash_setup(synapse, make_user, tmp_path) as (bot, account, _agent):
        bot_id = account.user_id
        db = Path(bot.env["SURFACES_STATE_DIR"]) / "surfaces.db"
        await bot.start()
        async with open_users(synapse, make_user, 1) as (user,):
            with trio.fail_after(ONBOARD_S):
                room = (await user.onboard(bot_id)).chat_id
            with trio.fail_after(REPLY_S):
                sent = await user.send_text(room, SLOW)
                await user.wait_bot_message(room, sent, bot_id, lambda m: m.msgtype == "m.text")

            # SIGTERM while the reply streams (~3 s left, grace 8 s).
            began = time.monotonic()
            code = await bot.terminate(timeout_s=GRACE_S + 15)
            took = time.monotonic() - began
            assert code == 0, f"exit code {code}:\n{bot.log_tail()}"
            assert took < GRACE_S + 10, took
            assert bot.logged("shutdown_finished"), bot.log_tail()
            assert integrity(db) == "ok"

            # The turn finished within the grace period: its reply is complete.
            with trio.fail_after(15):
                shown = await user.shown(room)
            check_room(shown, user.user_id, bot_id, [SLOW])

            # A restart answers the next message once and does not re-answer the first.
            await bot.start()
            await converse(user, room, bot_id, ["after restart"], None)
            with trio.fail_after(15):
                shown = await user.shown(room)
            check_room(shown, user.user_id, bot_id, [SLOW, "after restart"])
            code = await bot.terminate(timeout_s=GRACE_S + 15)
            assert code == 0, f"exit code {code}:\n{bot.log_tail()}"


@asynccontextmanager
async def open_users(synapse: LocalSynapse, make_user, count: int) -> AsyncIterator[list[SimUser]]:
    """``count`` fresh users, each with an open client."""
    async with AsyncExitStack() as stack:
        users = []
        for n in range(count):
            account = await make_user(f"crash{n}", displayname=f"Crash {n}")
            users.append(await stack.enter_async_context(SimUser.open(synapse, account)))
        yield users
