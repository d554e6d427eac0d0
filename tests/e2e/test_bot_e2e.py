"""The bot end to end on a real Synapse with the reference agent (both in-process).

Real sockets everywhere: ``BotApp`` runs in the test's nursery against the session's
Synapse (``tests/e2e/conftest.py``), the reference agent listens on a loopback port,
and simulated users (``e2e_users.SimUser``) drive real rooms. No virtual clock:
every wait polls the homeserver and is bounded with ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
from e2e_users import (
    SimUser,
    Workspace,
    after,
    describe,
    invite_name,
    is_space_invite,
    replies_per_message,
)

from agent_client.reference import ReferenceAgent, serve_reference_agent
from matrix_client import new_txn_id
from matrix_client.testing import LocalSynapse, RegisteredUser
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry
from surfaces.core import CHAT_EVENT, THREAD_EVENT

pytestmark = pytest.mark.synapse

STEP_S = 30  # one bot round trip (sync → agent → reply); Synapse answers in ms
START_S = 60
RATELIMITED_STEP_S = 120  # a reply under Synapse's default rc_message (0.2/s)


# ---- the bot and the agent, in-process -----------------------------------------------


@attrs.define
class BotRig:
    """One bot (``BotApp``) with its own Matrix account, state dir and reference agent."""

    hs: LocalSynapse
    account: RegisteredUser
    state_dir: Path
    workspace: Path
    agent: ReferenceAgent
    agent_url: str
    nursery: trio.Nursery
    env: dict[str, str]
    app: BotApp | None = None
    done: trio.Event | None = None

    @property
    def bot_id(self) -> str:
        return self.account.user_id

    def environ(self) -> dict[str, str]:
        environ = {
            "MATRIX_HOMESERVER": self.hs.base_url,
            "MATRIX_USER_ID": self.account.user_id,
            "MATRIX_PASSWORD": self.account.password,
            "MATRIX_DEVICE_ID": "SURFACESE2E",
            "AGENT_BASE_URL": self.agent_url,
            "SURFACES_WORKSPACE_DIR": str(self.workspace),
            "SURFACES_STATE_DIR": str(self.state_dir),
            "SURFACES_BOT__SHUTDOWN_GRACE_S": "5",
        }
        environ.update(self.env)
        return environ

    async def start(self) -> None:
        config = load_config(None, self.environ())
        registry = load_registry(
            config.agents.registry_path,
            default_base_url=config.agents.default_base_url,
            workspace_dir=config.agents.workspace_dir,
        )
        app = BotApp(config, registry)  # SQLite in worker threads, as in production
        done = trio.Event()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await app.run(task_status=task_status)
            finally:
                done.set()

        self.app, self.done = app, done
        with trio.fail_after(START_S):
            await self.nursery.start(run)

    async def stop(self, *, force: bool = False) -> None:
        assert self.app is not None
        assert self.done is not None
        self.app.request_stop(force=force)
        with trio.fail_after(30):
            await self.done.wait()

    def wipe_database(self) -> list[str]:
        """Delete ``surfaces.db`` and its WAL/SHM files (the bot must be stopped)."""
        removed = []
        for path in self.state_dir.glob("surfaces.db*"):
            path.unlink()
            removed.append(path.name)
        return removed

    def ratelimited_count(self) -> float:
        assert self.app is not None
        text = self.app.metrics.render().decode()
        match = re.search(r"^surfaces_matrix_ratelimited_total (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


@contextlib.asynccontextmanager
async def bot_rig(
    hs: LocalSynapse, make_user: Callable, tmp_path: Path, **env: str
) -> AsyncIterator[BotRig]:
    account = await make_user("bot", displayname="Surfaces")
    workspace = tmp_path / "agents"
    workspace.mkdir()
    agent = ReferenceAgent(workspace, chunk_delay_s=0.02)
    async with trio.open_nursery() as nursery:
        serve = partial(serve_reference_agent, agent=agent)
        port = await nursery.start(serve, "127.0.0.1", 0, workspace)
        rig = BotRig(
            hs=hs,
            account=account,
            state_dir=tmp_path / "state",
            workspace=workspace,
            agent=agent,
            agent_url=f"http://127.0.0.1:{port}/agent_0/",
            nursery=nursery,
            env=dict(env),
        )
        await rig.start()
        try:
            yield rig
        finally:
            if rig.done is not None and not rig.done.is_set():
                with trio.CancelScope(shield=True):
                    await rig.stop()
            nursery.cancel_scope.cancel()


# ---- expectations ------------------------------------------------------------------


def echo_done(text: str, *, first: bool | None = None, previous: str | None = None):
    """A predicate: the reference agent's complete echo reply to ``text``."""
    if first:
        tail = r"This is the first message of this chat\."
    elif previous is not None:
        tail = rf"Previously you said: «{re.escape(previous)}»\."
    else:
        tail = r"(?:This is the first message of this chat\.|Previously you said: «.*»\.)"
    pattern = re.compile(
        rf"Turn \d+\. You said: «{re.escape(text)}»\. {tail}(?: Attachments \(\d+\): .*\.)?",
        re.DOTALL,
    )
    return lambda body: pattern.fullmatch(body) is not None


@contextlib.contextmanager
def within(seconds: float, user: SimUser, room_id: str, what: str) -> Iterator[None]:
    """``trio.fail_after`` whose failure shows what the user saw in the room."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        shown = describe(user.last_shown.get(room_id, []))
        raise AssertionError(f"{what}: not seen within {seconds:g} s; the room shows:\n{shown}")


async def say(user: SimUser, room_id: str, bot_id: str, text: str, done) -> str:
    """Send ``text`` and return the bot's complete reply text."""
    with within(STEP_S, user, room_id, f"reply to {text!r}"):
        sent = await user.send_text(room_id, text)
        reply = await user.wait_reply(room_id, sent, bot_id, done)
    return reply.body


async def command(user: SimUser, room_id: str, bot_id: str, text: str, expect: str) -> str:
    """Send a ``!command`` and return the bot's notice containing ``expect``."""
    with within(STEP_S, user, room_id, f"notice {expect!r} after {text!r}"):
        sent = await user.send_text(room_id, text)
        notice = await user.wait_notice(room_id, sent, bot_id, expect)
    return notice.body


async def platform_chat_id(user: SimUser, room_id: str) -> str:
    with trio.fail_after(STEP_S):
        content = await user.state(room_id, CHAT_EVENT)
    assert content is not None, f"no {CHAT_EVENT} in {room_id}"
    return content["platform_chat_id"]


async def onboard(user: SimUser, bot_id: str) -> Workspace:
    with trio.fail_after(STEP_S):
        return await user.onboard(bot_id)


# ---- tests -------------------------------------------------------------------------


async def test_onboarding_commands_and_isolation(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        alice_account = await make_user("alice", displayname="Alice")
        async with SimUser.open(synapse, alice_account) as alice:
            # Onboarding: invites to the Space and "Чат 1", linked both ways.
            with trio.fail_after(STEP_S):
                dm = await alice.create_dm(bot)
                space_inv = await alice.wait_invite(
                    lambda i: i.inviter == bot and is_space_invite(i)
                )
                chat_inv = await alice.wait_invite(
                    lambda i: i.inviter == bot and not is_space_invite(i)
                )
            assert invite_name(space_inv) == "Lambda — Alice"
            assert invite_name(chat_inv) == "Чат 1"
            space, c1 = space_inv.room_id, chat_inv.room_id
            with trio.fail_after(STEP_S):
                await alice.join(space)
                await alice.join(c1)
                child = await alice.state(space, "m.space.child", c1)
                parent = await alice.state(c1, "m.space.parent", space)
                await alice.wait_notice(dm, None, bot, "Lambda — Alice")
                welcome = await alice.wait_bot_message(
                    c1, None, bot, lambda m: m.body.startswith("Привет, Alice!")
                )
            assert child, child
            assert child.get("via"), child
            assert parent, parent
            assert parent.get("via"), parent
            assert welcome.msgtype == "m.text"
            c1_pcid = await platform_chat_id(alice, c1)
            assert c1_pcid.isdigit()

            # A turn: the reference agent's echo.
            body = await say(alice, c1, bot, "hello agent", echo_done("hello agent", first=True))
            assert body.startswith("Turn 1.")
            body = await say(
                alice, c1, bot, "second one", echo_done("second one", previous="hello agent")
            )

            # !new: a second room in the same Space, with its own platform chat id.
            notice = await command(alice, c1, bot, "!new Проект", "Создан чат")
            assert notice == "Создан чат: Проект (C2)"
            with trio.fail_after(STEP_S):
                c2_inv = await alice.wait_invite(
                    lambda i: i.inviter == bot and invite_name(i) == "Проект"
                )
                c2 = c2_inv.room_id
                await alice.join(c2)
                c2_child = await alice.state(space, "m.space.child", c2)
                c2_parent = await alice.state(c2, "m.space.parent", space)
            assert c2_child
            assert c2_child.get("via")
            assert c2_parent is not None
            c2_pcid = await platform_chat_id(alice, c2)
            assert c2_pcid != c1_pcid
            await say(alice, c2, bot, "in project", echo_done("in project", first=True))

            # !rename: the room name and the binding's name change, ids do not.
            assert await command(alice, c2, bot, "!rename Новое имя", "переименован") == (
                "Чат переименован: Новое имя"
            )
            with trio.fail_after(STEP_S):
                name = await alice.state(c2, "m.room.name")
            assert name == {"name": "Новое имя"}
            assert await platform_chat_id(alice, c2) == c2_pcid
            await command(alice, c2, bot, "!rename", "Использование: !rename")

            # !chats: both chats, the current one marked.
            chats = await command(alice, c1, bot, "!chats", "Твои чаты")
            assert "▶ C1 — Чат 1" in chats, chats
            assert "• C2 — Новое имя" in chats, chats

            # !archive: off the list, unlinked from the Space, memory kept.
            await command(alice, c2, bot, "!archive", "архивирован")
            with trio.fail_after(STEP_S):
                assert not await alice.state(space, "m.space.child", c2)
            chats = await command(alice, c1, bot, "!chats", "Твои чаты")
            assert "C2" not in chats, chats
            assert "▶ C1 — Чат 1" in chats, chats
            await command(alice, c2, bot, "after archive", "в архиве")

            # !clear: a new platform chat id; the agent starts a fresh conversation.
            assert await command(alice, c1, bot, "!clear", "Контекст") == "Контекст сброшен."
            c1_new_pcid = await platform_chat_id(alice, c1)
            assert c1_new_pcid not in (c1_pcid, c2_pcid)
            body = await say(alice, c1, bot, "fresh start", echo_done("fresh start", first=True))
            assert body.startswith("Turn 1."), body
            assert set(rig.agent.history) >= {c1_pcid, c2_pcid, c1_new_pcid}

            # A second user: a workspace of their own, nothing shared.
            bob_account = await make_user("bob", displayname="Bob")
            async with SimUser.open(synapse, bob_account) as bob:
                bob_ws = await onboard(bob, bot)
                assert bob_ws.space_id != space
                assert bob_ws.chat_id not in (c1, c2)
                bob_pcid = await platform_chat_id(bob, bob_ws.chat_id)
                assert bob_pcid not in (c1_pcid, c2_pcid, c1_new_pcid)
                body = await say(
                    bob, bob_ws.chat_id, bot, "hello agent", echo_done("hello agent", first=True)
                )
                assert body.startswith("Turn 1."), body
                with trio.fail_after(STEP_S):
                    for room in (bob_ws.space_id, bob_ws.chat_id):
                        members = await bob.client.joined_members(room)
                        assert set(members) == {bob.user_id, bot}, members
                    for room in (space, c1):
                        members = await alice.client.joined_members(room)
                        assert set(members) == {alice.user_id, bot}, members
                assert not set(alice.invites) & {bob_ws.space_id, bob_ws.chat_id}
                # The bot's stored records agree: one Space each, separate chats.
                assert rig.app is not None
                assert rig.app.store is not None
                store = rig.app.store
                alice_rec = await store.get_user(alice.user_id)
                bob_rec = await store.get_user(bob.user_id)
                assert alice_rec is not None
                assert alice_rec.space_id == space
                assert bob_rec is not None
                assert bob_rec.space_id == bob_ws.space_id
                assert [c.room_id for c in await store.chats_of(bob.user_id)] == [bob_ws.chat_id]
                assert [c.room_id for c in await store.chats_of(alice.user_id)] == [c1]


async def test_wiped_database_keeps_rooms_and_agent_memory(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse, await make_user("carol", displayname="Carol")) as carol:
            ws = await onboard(carol, bot)
            pcid = await platform_chat_id(carol, ws.chat_id)
            await say(carol, ws.chat_id, bot, "remember me", echo_done("remember me", first=True))

            await rig.stop()
            assert "surfaces.db" in rig.wipe_database()
            await rig.start()

            # The room still works, bound to the same platform chat id: the agent
            # continues the same conversation.
            body = await say(
                carol,
                ws.chat_id,
                bot,
                "still there?",
                echo_done("still there?", previous="remember me"),
            )
            # Exactly one reply per message: the restart answered nothing twice
            # (the agent saw "remember me" once, so this is its turn 2).
            with trio.fail_after(STEP_S):
                shown = await carol.shown(ws.chat_id)
            per_message = replies_per_message(shown, carol.user_id, bot)
            assert [len(replies) for _, replies in per_message] == [1, 1], (
                "a message was answered twice after the restart:\n" + describe(shown)
            )
            # Nor did the agent get a message twice (Synapse's txn-id dedup would hide a
            # re-run's reply message, but not the duplicate turn).
            assert rig.agent.history[pcid] == ["remember me", "still there?"], (
                f"the agent saw {rig.agent.history[pcid]!r} (a message re-run after the restart)"
            )
            assert body.startswith("Turn 2."), body
            with trio.fail_after(STEP_S):
                dm_notices = [m for m in await carol.shown(ws.dm_id) if m.sender == bot]
            assert len(dm_notices) == 1, describe(dm_notices)  # the DM invite not replayed
            assert await platform_chat_id(carol, ws.chat_id) == pcid
            assert rig.app is not None
            assert rig.app.store is not None
            store = rig.app.store
            chat = await store.get_chat(ws.chat_id)
            assert chat is not None
            assert chat.platform_chat_id == pcid
            assert chat.local_id == "C1"
            user = await store.get_user(carol.user_id)
            assert user is not None
            assert user.space_id == ws.space_id

            # Nothing was re-created; a new chat gets a fresh id past the recovered one.
            notice = await command(carol, ws.chat_id, bot, "!new", "Создан чат")
            assert notice.endswith("(C2)"), notice
            with trio.fail_after(STEP_S):
                new_room = (
                    await carol.wait_invite(
                        lambda i: i.inviter == bot and i.room_id not in (ws.space_id, ws.chat_id)
                    )
                ).room_id
                await carol.join(new_room)
            new_pcid = await platform_chat_id(carol, new_room)
            assert int(new_pcid) > int(pcid)
            await say(carol, new_room, bot, "new room", echo_done("new room", first=True))


@pytest.mark.slow
async def test_streamed_reply_complete_under_default_ratelimits(
    synapse_default: LocalSynapse, make_default_user, tmp_path: Path
) -> None:
    # Fast edits, so the bot outruns Synapse's rc_message (0.2/s, burst 10) for sure.
    async with bot_rig(
        synapse_default,
        make_default_user,
        tmp_path,
        SURFACES_STREAMING__FIRST_EDIT_AFTER_S="0.1",
        SURFACES_STREAMING__MIN_EDIT_INTERVAL_S="0.2",
        SURFACES_STREAMING__MAX_EDIT_INTERVAL_S="0.3",
    ) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse_default, await make_default_user("dave")) as dave:
            ws = await onboard(dave, bot)
            room = ws.chat_id
            with trio.fail_after(RATELIMITED_STEP_S):
                sent = await dave.send_text(room, "/slow 0.2 20")
                reply = await dave.wait_reply(room, sent, bot, lambda b: b.endswith("slow 20/20"))
            expected = " ".join(f"slow {i}/20" for i in range(1, 21))
            assert reply.body == expected
            assert reply.edits >= 1  # it streamed: a message, then edits

            with trio.fail_after(RATELIMITED_STEP_S):
                sent = await dave.send_text(room, "/chunks 20")
                reply = await dave.wait_reply(room, sent, bot, lambda b: "chunk 20/20" in b)
            assert reply.body == "\n".join(f"chunk {i}/20" for i in range(1, 21))

            # Exactly one reply message per prompt, and Synapse really pushed back.
            shown = await dave.shown(room)
            texts = [m for m in shown if m.sender == bot and m.msgtype == "m.text"]
            assert len(texts) == 3, [m.body[:40] for m in texts]  # welcome + 2 replies
            assert rig.ratelimited_count() > 0


async def test_files_to_and_from_the_agent(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse, await make_user("erin")) as erin:
            ws = await onboard(erin, bot)
            room = ws.chat_id
            data = b"quarterly numbers\n" * 10

            # A file without text is staged (durably, with a notice) ...
            with trio.fail_after(STEP_S):
                sent = await erin.send_file(room, "notes.txt", data)
                staged = await erin.wait_notice(room, sent, bot, "notes.txt")
            assert "получен" in staged.body, staged.body
            assert (rig.workspace / "incoming" / "notes.txt").read_bytes() == data
            listing = await command(erin, room, bot, "!list", "notes.txt")
            assert listing.startswith("Файлы для следующего сообщения:"), listing

            # ... and the next text turn carries it, workspace-relative.
            body = await say(erin, room, bot, "see attached", echo_done("see attached"))
            assert f"Attachments (1): incoming/notes.txt ({len(data)} bytes)." in body, body
            await command(erin, room, bot, "!list", "Очередь файлов пуста")

            # A file back from the agent: an m.file whose media downloads.
            with trio.fail_after(STEP_S):
                sent = await erin.send_text(room, "/file report.txt")
                text = await erin.wait_reply(room, sent, bot, lambda b: b == "Here is report.txt.")
                shown = await erin.shown(room)
            files = [m for m in after(shown, sent) if m.sender == bot and m.msgtype == "m.file"]
            assert len(files) == 1, files
            content = files[0].content
            assert content["body"] == "report.txt"
            assert content["info"]["mimetype"].startswith("text/plain")
            pcid = await platform_chat_id(erin, room)
            with trio.fail_after(STEP_S):
                data = await erin.download(content)  # decrypted, hash checked (E2EE room)
            assert data.decode() == f"Reference agent file for chat {pcid}, turn 2.\n"
            assert content["info"]["size"] == len(data)
            assert files[0].index != text.index


async def test_health_and_metrics_endpoints_on_a_running_bot(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    """The ops server runs inside the bot: /readyz and /healthz answer 200 once the
    bot syncs, and /metrics values move when turns run."""
    import httpx

    env = {"SURFACES_OPS__ENABLED": "true", "SURFACES_OPS__PORT": "0"}
    async with bot_rig(synapse, make_user, tmp_path, **env) as rig:
        assert rig.app is not None
        bot = rig.bot_id
        port = rig.app.ops_port
        assert port
        base = f"http://127.0.0.1:{port}"

        def metric(text: str, name: str, also: str = "") -> float:
            total = 0.0
            for line in text.splitlines():
                if line.startswith(name) and also in line and not line.startswith("#"):
                    total += float(line.rsplit(" ", 1)[1])
            return total

        async with httpx.AsyncClient(base_url=base) as ops:
            with trio.fail_after(STEP_S):
                # Polling an HTTP endpoint of another component: nothing to wait on.
                while (await ops.get("/readyz")).status_code != 200:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            health = await ops.get("/healthz")
            assert health.status_code == 200, health.text
            before = (await ops.get("/metrics")).text
            async with SimUser.open(synapse, await make_user("frank")) as frank:
                ws = await onboard(frank, bot)
                await say(frank, ws.chat_id, bot, "metrics please", echo_done("metrics please"))
            after = await ops.get("/metrics")
            assert after.headers["content-type"].startswith("text/plain")
            assert (
                metric(after.text, "surfaces_turns_total{", 'outcome="ok"')
                >= metric(before, "surfaces_turns_total{", 'outcome="ok"') + 1
            )
            assert metric(after.text, "surfaces_matrix_requests_total") > metric(
                before, "surfaces_matrix_requests_total"
            )
            assert metric(after.text, "surfaces_events_admitted_total") >= 1
            assert metric(after.text, "surfaces_agent_first_text_seconds_count") >= 1
            assert (await ops.get("/nope")).status_code == 404


def sync_responses(rig: BotRig) -> float:
    """``GET /sync`` requests of the bot answered 200 so far (its metrics)."""
    assert rig.app is not None
    total = 0.0
    for line in rig.app.metrics.render().decode().splitlines():
        if (
            line.startswith("surfaces_matrix_requests_total{")
            and 'endpoint="GET /sync"' in line
            and 'status="200"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_own_events_filtered_and_pre_join_history_ignored(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    """Synapse (v1.11+) honours the filter's ``not_senders``: the bot's replies do
    not end its own long-poll. With its join hidden as well, ``unsigned.membership``
    still marks DM messages from before the join as history, not prompts."""
    # A long-poll that cannot time out during the test, so every sync counted
    # below was ended by an event.
    async with bot_rig(
        synapse, make_user, tmp_path, SURFACES_MATRIX__SYNC_LONG_POLL_S="300"
    ) as rig:
        bot = rig.bot_id
        assert rig.app is not None
        assert rig.app.sync_filter is not None
        assert rig.app.sync_filter["room"]["timeline"]["not_senders"] == [bot]
        async with SimUser.open(synapse, await make_user("gina", displayname="Gina")) as gina:
            ws = await onboard(gina, bot)
            await say(gina, ws.chat_id, bot, "warm up", echo_done("warm up", first=True))
            await trio.sleep(1)  # the bot's last sends settle (they wake nothing)
            before = sync_responses(rig)
            with within(STEP_S, gina, ws.chat_id, "a reply with edits"):
                sent = await gina.send_text(ws.chat_id, "/slow 0.5 5")
                reply = await gina.wait_reply(
                    ws.chat_id, sent, bot, lambda b: b.endswith("slow 5/5")
                )
            assert reply.edits >= 1  # a message and its edits: several own events
            await trio.sleep(1)
            # One sync brought gina's message; none came back for the reply.
            assert sync_responses(rig) == before + 1

            # Messages in a DM before the bot joined it (before the invite, and
            # while invited: the bot is stopped so it cannot join in between).
            await rig.stop()
            with trio.fail_after(STEP_S):
                dm = await gina.client.create_room(preset="trusted_private_chat", is_direct=True)
                await gina.send_text(dm, "before the invite")
                await gina.client.invite(dm, bot)
                await gina.send_text(dm, "while invited")
            await rig.start()
            with trio.fail_after(STEP_S):
                await gina.wait_notice(dm, None, bot, "отправлены повторно")  # the invite
            with within(STEP_S, gina, dm, "the reply to a message after the join"):
                sent = await gina.send_text(dm, "after the join")
                await gina.wait_notice(dm, sent, bot, "отправлены повторно")
            with trio.fail_after(STEP_S):
                shown = await gina.shown(dm)
            from_bot = [m for m in shown if m.sender == bot]
            # The invite and "after the join" answered; the two old messages not.
            assert len(from_bot) == 2, describe(shown)


async def test_threads_captions_edits_and_reactions_as_element_sends_them(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    """Issue 14 on a real Synapse: a thread answered in the thread with its own
    conversation (bound in room state), a captioned image as one turn, an edit re-run
    into the same reply, 🔁 (with U+FE0F) regenerating into it, 👍 answering a question."""
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse, await make_user("tess")) as tess:
            ws = await onboard(tess, bot)
            room = ws.chat_id
            client = tess.client

            async def send(content: dict, event_type: str = "m.room.message") -> str:
                """As Element sends it: encrypted in an encrypted room (reactions too)."""
                if tess.crypto is not None:
                    await tess.sync_once()
                    return await tess.crypto.send(room, event_type, content)
                return await client.send_event(room, event_type, content, txn_id=new_txn_id())

            async def react(target: str, key: str) -> str:
                relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
                return await send({"m.relates_to": relates}, event_type="m.reaction")

            # A thread: answered in it, as a conversation of its own.
            await say(tess, room, bot, "root", echo_done("root", first=True))
            root = next(m for m in await tess.shown(room) if m.body == "root").event_id
            thread = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
            asked = await send(
                {
                    "msgtype": "m.text",
                    "body": "in the thread",
                    "m.relates_to": {**thread, "m.in_reply_to": {"event_id": root}},
                }
            )
            with within(STEP_S, tess, room, "the reply in the thread"):
                reply = await tess.wait_reply(
                    room, asked, bot, echo_done("in the thread", first=True)
                )
            events = {e.event_id: e for e in await tess.timeline(room)}
            relation = events[reply.event_id].content["m.relates_to"]
            assert relation["rel_type"] == "m.thread", relation
            assert relation["event_id"] == root
            assert relation["m.in_reply_to"] == {"event_id": asked}
            binding = await tess.state(room, THREAD_EVENT, root)
            assert binding is not None
            assert binding["platform_chat_id"] != await platform_chat_id(tess, room)

            # A captioned image: one turn, the caption as the text.
            image: dict = {
                "msgtype": "m.image",
                "body": "what is this?",
                "filename": "cat.png",
                "info": {"mimetype": "image/png", "size": 4},
            }
            if tess.crypto is not None and await tess.crypto.encryption(room):
                image["file"] = await tess.crypto.upload_encrypted(
                    b"\x89PNG", content_type="image/png", filename="cat.png"
                )
            else:
                image["url"] = await client.upload(
                    b"\x89PNG", content_type="image/png", filename="cat.png"
                )
            captioned = await send(image)
            with within(STEP_S, tess, room, "the caption's turn"):
                body = (
                    await tess.wait_reply(room, captioned, bot, echo_done("what is this?"))
                ).body
            assert "Attachments (1): incoming/cat.png" in body, body

            # An edit re-runs the latest turn into the same reply.
            question = await tess.send_text(room, "teh question")
            with within(STEP_S, tess, room, "the first answer"):
                answer = await tess.wait_reply(room, question, bot, echo_done("teh question"))
            await send(
                {
                    "msgtype": "m.text",
                    "body": "* the question",
                    "m.new_content": {"msgtype": "m.text", "body": "the question"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": question},
                }
            )

            def edited(shown: list) -> bool:
                mine = [m for m in shown if m.event_id == answer.event_id]
                return bool(mine) and "«the question»" in mine[0].body

            with within(STEP_S, tess, room, "the reply edited in place"):
                shown = await tess.wait_shown(room, edited)
            bot_texts = [m for m in after(shown, question) if m.sender == bot]
            assert [m.event_id for m in bot_texts] == [answer.event_id], describe(shown)

            # 🔁 (Element's quick reaction, with U+FE0F) regenerates into the same reply.
            turn = int(re.match(r"Turn (\d+)", bot_texts[0].body).group(1))
            await react(answer.event_id, "\U0001f501\ufe0f")

            def regenerated(shown: list) -> bool:
                mine = [m for m in shown if m.event_id == answer.event_id]
                return bool(mine) and mine[0].body.startswith(f"Turn {turn + 1}.")

            with within(STEP_S, tess, room, "the regenerated reply"):
                shown = await tess.wait_shown(room, regenerated)
            assert [m.event_id for m in after(shown, question) if m.sender == bot] == [
                answer.event_id
            ]

            # 👍 on the agent's question answers it.
            ask = await tess.send_text(room, "/confirm")
            with within(STEP_S, tess, room, "the question"):
                notice = await tess.wait_notice(room, ask, bot, "👍")
            await react(notice.event_id, "\U0001f44d\ufe0f")
            with within(STEP_S, tess, room, "the approved reply"):
                await tess.wait_reply(room, ask, bot, lambda b: b == "approved")
