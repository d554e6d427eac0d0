"""Process faults: the real ``surfaces run`` process against a real Synapse.

* SIGKILL at random points during a 20-user × 10-message run (≥ 20 kills, fixed
  seed), restarting each time: afterwards every message has exactly one final,
  complete reply and the state database passes ``PRAGMA integrity_check``.
* A token revoked while the bot runs: the process exits with code 3 and a clear
  ``fatal`` line.

Bounded: onboarding and sends run in parallel, every wait has a deadline.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio
from proc_helpers import YOU_SAID, BotProcess, User, visible_bot_messages

from agent_client.reference import ReferenceAgent, serve_reference_agent
from matrix_client.testing import LocalSynapse

pytestmark = [pytest.mark.slow, pytest.mark.synapse]

USERS = 20
MESSAGES = 10
MIN_KILLS = 20
SEED = 20240611


async def _register(hs: LocalSynapse, http: httpx.AsyncClient, prefix: str) -> User:
    localpart = f"{prefix}-{uuid.uuid4().hex[:8]}"
    reg = await hs.register(localpart, f"pw-{uuid.uuid4().hex}")
    return User(http, reg.user_id, reg.access_token)


async def _world(hs: LocalSynapse, tmp_path: Path, nursery: trio.Nursery, **env: str):
    workspace = tmp_path / "agents"
    workspace.mkdir()
    # Echo replies (they quote the prompt, so each reply maps to its message),
    # streamed in 4 chunks 0.25 s apart: kills land mid-stream.
    agent = ReferenceAgent(workspace, chunk_delay_s=0.25)
    port = await nursery.start(
        functools.partial(serve_reference_agent, agent=agent), "127.0.0.1", 0, workspace
    )
    password = f"pw-{uuid.uuid4().hex}"
    bot_local = f"faultbot-{uuid.uuid4().hex[:8]}"
    bot = await hs.register(bot_local, password)
    (tmp_path / "logs").mkdir()
    base_env = {
        "MATRIX_HOMESERVER": hs.base_url,
        "MATRIX_USER_ID": bot.user_id,
        "MATRIX_PASSWORD": password,
        "MATRIX_DEVICE_ID": "FAULTBOT",
        "AGENT_BASE_URL": f"http://127.0.0.1:{port}/",
        "SURFACES_WORKSPACE_DIR": str(workspace),
        "SURFACES_STATE_DIR": str(tmp_path / "state"),
        "SURFACES_LOG__FORMAT": "json",
        "SURFACES_BOT__SHUTDOWN_GRACE_S": "5",
        # The users here read rooms with plain HTTP; the kills in encrypted rooms are
        # tests/e2e/test_crash_restart.py (its users have E2EE devices).
        "SURFACES_MATRIX__ENCRYPTION": "false",
        **env,
    }
    return BotProcess(base_env, tmp_path / "logs"), bot, agent


#: A merged turn's messages (docs/agent-protocol.md, "Text conventions").
MERGED = re.compile(r'<message n="\d+" of="\d+"[^>]*>\n(.*?)\n</message>', re.DOTALL)


def _answered(reply: str) -> list[str]:
    """The messages one reply answers: several when a burst was merged into its turn."""
    said = YOU_SAID.search(reply).group(1)
    return MERGED.findall(said) or [said]


def _check_replies(users: list[User], events: dict[str, list[dict]], bot_id: str) -> list[str]:
    """Problems with the replies, as readable lines (empty: all good). Every message is
    answered by exactly one reply (one reply may answer a merged burst)."""
    problems: list[str] = []
    for user in users:
        shown = visible_bot_messages(events[user.user_id], bot_id)
        replies = [
            m
            for m in shown
            if m.get("msgtype") != "m.notice" and YOU_SAID.search(m.get("body", ""))
        ]
        answered = Counter(said for m in replies for said in _answered(m["body"]))
        for body in user.sent.values():
            if answered[body] != 1:
                problems.append(f"{user.user_id}: {body!r} has {answered[body]} replies")
        for m in replies:
            if "прерван" in m["body"] or "перезапускается" in m["body"]:
                problems.append(f"{user.user_id}: reply not final: {m['body'][:120]!r}")
            if any(said not in user.sent.values() for said in _answered(m["body"])):
                problems.append(f"{user.user_id}: reply to nothing: {m['body'][:120]!r}")
        failed = [
            m["body"] for m in shown if m.get("msgtype") == "m.notice" and "Не удалось" in m["body"]
        ]
        problems += [f"{user.user_id}: failure notice {b!r}" for b in failed]
    return problems


async def test_sigkill_storm_exactly_one_reply_per_message(synapse, tmp_path):
    """User sees: 20 users × 10 messages while the bot is SIGKILLed ≥ 20 times at
    random points (mid-stream, mid-send, during start-up) and restarted: every
    message ends with exactly one reply bubble whose final text is the complete
    answer (no duplicates, no losses, no interrupted mark, no failure notice);
    afterwards a SIGTERM stops the bot cleanly (exit 0) and the state DB passes
    ``PRAGMA integrity_check``."""
    rng = random.Random(SEED)
    async with (
        httpx.AsyncClient(base_url=synapse.base_url, timeout=60) as http,
        trio.open_nursery() as nursery,
    ):
        bot_proc, bot, agent = await _world(
            synapse, tmp_path, nursery, SURFACES_BOT__ROOM_QUEUE_SIZE="50"
        )
        users: list[User] = []

        async def register_one(i: int) -> None:
            users.append(await _register(synapse, http, f"u{i:02d}"))

        with trio.fail_after(60):
            async with trio.open_nursery() as n:
                for i in range(USERS):
                    n.start_soon(register_one, i)
        users.sort(key=lambda u: u.user_id)

        # Onboarding (no kills): DM invite → Space + first chat, joined.
        await bot_proc.start()
        await bot_proc.wait_started()
        with trio.fail_after(120):
            async with trio.open_nursery() as n:
                for user in users:
                    await user.create_dm(bot.user_id)
                    n.start_soon(user.accept_workspace)

        # Messages in parallel, while a killer SIGKILLs and restarts the bot.
        sending_done = trio.Event()
        kills = 0

        async def chat(user: User, seed: int) -> None:
            r = random.Random(seed)
            for j in range(MESSAGES):
                await trio.sleep(r.uniform(0.2, 2.5))
                await user.say(f"{user.user_id.split(':')[0][1:4]}-m{j}-{r.randrange(10**6)}")

        async def killer() -> None:
            nonlocal kills
            while kills < MIN_KILLS or not sending_done.is_set():
                if rng.random() < 0.25:
                    await trio.sleep(rng.uniform(0.05, 1.0))  # maybe still starting up
                else:
                    await bot_proc.wait_started(60)
                    await trio.sleep(rng.uniform(0.2, 2.0))
                await bot_proc.kill()
                kills += 1
                await bot_proc.start()

        with trio.fail_after(240):
            async with trio.open_nursery() as n:
                n.start_soon(killer)
                async with trio.open_nursery() as senders:
                    for k, user in enumerate(users):
                        senders.start_soon(chat, user, SEED + k)
                sending_done.set()
        assert kills >= MIN_KILLS

        # Settle: the last bot run answers everything that is still pending.
        await bot_proc.wait_started(60)
        problems: list[str] = ["not checked yet"]
        with trio.move_on_after(120):
            while problems:
                await trio.sleep(3)
                events = {u.user_id: await u.room_events() for u in users}
                problems = _check_replies(users, events, bot.user_id)
        code = await bot_proc.stop()
        nursery.cancel_scope.cancel()

    assert code == 0, bot_proc.log()[-3000:]
    with sqlite3.connect(tmp_path / "state" / "surfaces.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        pending = db.execute(
            "SELECT COUNT(*) FROM inbox WHERE status NOT IN ('done', 'rejected', 'failed')"
        ).fetchone()[0]
    summary = Counter(re.sub(r"^@[^ ]+: ('[^']*' )?", "", p)[:40] for p in problems)
    assert not problems, f"after {kills} kills: {dict(summary)}\n" + "\n".join(problems[:60])
    assert pending == 0
    # Every reply is a turn the agent served (a killed turn is served again, and a
    # burst queued behind a kill is merged into one turn, so there are fewer turns
    # than messages when bursts were merged).
    replies = sum(
        1
        for u in users
        for m in visible_bot_messages(events[u.user_id], bot.user_id)
        if m.get("msgtype") != "m.notice" and YOU_SAID.search(m.get("body", ""))
    )
    assert replies >= USERS
    assert agent.turns_served >= replies


async def test_token_revoked_mid_run_exits_3(synapse, tmp_path):
    """Operator sees: when the bot's access token is revoked while it runs, the
    process exits with code 3 within one long-poll and prints a clear
    ``surfaces: fatal: … M_UNKNOWN_TOKEN …`` line (no retry loop)."""
    async with (
        httpx.AsyncClient(base_url=synapse.base_url, timeout=60) as http,
        trio.open_nursery() as nursery,
    ):
        bot_proc, bot, _ = await _world(
            synapse, tmp_path, nursery, SURFACES_MATRIX__SYNC_LONG_POLL_S="5"
        )
        bot_proc.env.pop("MATRIX_PASSWORD")
        bot_proc.env["MATRIX_ACCESS_TOKEN"] = bot.access_token
        await bot_proc.start()
        await bot_proc.wait_started()
        await trio.sleep(1)
        r = await http.post(
            "/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {bot.access_token}"}
        )
        assert r.status_code == 200
        with trio.fail_after(60):
            assert bot_proc.process is not None
            code = await bot_proc.process.wait()
        nursery.cancel_scope.cancel()
    log = bot_proc.log()
    assert code == 3, log[-3000:]
    assert "surfaces: fatal:" in log
    assert "M_UNKNOWN_TOKEN" in log
