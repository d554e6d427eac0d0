"""``surfaces demo``: the whole product on one machine, in one trio program.

    surfaces demo [--once] [--state-dir DIR] [--keep] [--port N] [--locale ru|en] [--verbose]

What it does, printing a transcript as it goes:

1. starts a throwaway Synapse on ``127.0.0.1`` (``surfaces.local_synapse``), registers
   the bot (``@surfaces-bot:localhost``) and a demo user (``@demo:localhost``) with
   generated passwords;
2. starts the reference agent on a free loopback port, its workspace inside the state
   directory, and the bot (``BotApp``) configured from an environment dict, exactly as
   a container deployment would configure it;
3. plays a scripted conversation as the demo user (``MatrixClient``): DM + invite →
   Space and first chat appear → a streamed reply → ``!new`` → a file to the agent →
   a file back from the agent (downloaded and compared) → ``!chats``. Every step has a
   deadline and ends with ✓ or ✗;
4. unless ``--once``, stays up and prints how to log in with a real Matrix client
   (loopback only) until Ctrl-C, which stops the bot gracefully, then the agent, then
   Synapse. A second Ctrl-C skips the bot's grace period.

Exit codes: 0 when every step succeeded; 1 when a step failed (the transcript names
it); 130 when interrupted before the script finished.

State directory layout (a temporary directory, deleted at exit unless ``--keep`` or a
step failed; a given ``--state-dir`` is always kept and can be reused)::

    synapse/            homeserver database, media, logs (homeserver.log)
    bot/                the bot's SQLite state (SURFACES_STATE_DIR)
    workspace/          the reference agent's workspace (SURFACES_WORKSPACE_DIR)
    bot.log             the bot's, the agent's and the demo's logs (not with --verbose)
    credentials.json    generated passwords, so a reused state directory logs in again

On a reused state directory the previous demo user already has a workspace, so the
script uses a fresh one (``demo2``, ``demo3``…) to show the onboarding again.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs
import structlog
import trio

from agent_client.reference import serve_reference_agent
from matrix_client import MatrixClient, RoomEvent, new_txn_id, text_content
from matrix_client.testing import LocalSynapse, SynapseError
from surfaces.i18n import t

__all__ = ["DemoOptions", "main", "run_demo"]

log = structlog.get_logger(__name__)

BOT_LOCALPART = "surfaces-bot"
DEMO_LOCALPART = "demo"
STEP_DEADLINE_S = 30.0
STARTUP_DEADLINE_S = 90.0
BOT_GRACE_S = 5.0
BOT_STOP_DEADLINE_S = BOT_GRACE_S + 20.0
# The reference agent pauses between the chunks of its echo reply, so the streamed
# edits are visible (the bot's first edit comes after 0.8 s, then at most one a second).
AGENT_CHUNK_DELAY_S = 0.6
# A reply is complete once the bot stopped typing and sent nothing for this long
# (its final edit follows the end of typing at once).
REPLY_QUIET_S = 1.5
# ...or, when no typing was seen (a very short turn), after this long without an edit
# (longer than the edit interval of the bot's throttle while the agent streams).
REPLY_QUIET_NO_TYPING_S = 2.5
SHOW_CHARS = 160

USER_LINES = {
    "ru": {
        "hello": "Привет! Расскажи, что ты умеешь?",
        "notes": "Заметки для агента: купить молоко, дописать отчёт.",
        "what_file": "Что в приложенном файле?",
        "report": "Отчёт демо: всё работает.",
    },
    "en": {
        "hello": "Hi! What can you do?",
        "notes": "Notes for the agent: buy milk, finish the report.",
        "what_file": "What is in the attached file?",
        "report": "Demo report: everything works.",
    },
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class StepFailed(Exception):
    """A scripted step could not complete; the message says why."""


@attrs.frozen
class DemoOptions:
    once: bool = False
    state_dir: Path | None = None
    keep: bool = False
    port: int | None = None
    locale: str = "ru"
    verbose: bool = False


# --------------------------------------------------------------------------- transcript


@attrs.define
class Transcript:
    """The readable output: numbered steps with ✓/✗ and indented details."""

    out: TextIO
    results: list[tuple[str, bool, str]] = attrs.Factory(list)
    _n: int = 0

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def detail(self, text: str) -> None:
        for i, row in enumerate(text.splitlines() or [""]):
            self.line(("    " if i == 0 else "      ") + row)

    @contextmanager
    def step(self, title: str, deadline_s: float = STEP_DEADLINE_S) -> Iterator[None]:
        """One step: a header, its details, then ✓ or ✗ (deadline, error)."""
        self._n += 1
        label = f"[{self._n}] {title}"
        self.line(f"→ {label}")
        began = time.monotonic()
        try:
            with trio.fail_after(deadline_s):
                yield
        except trio.TooSlowError:
            self._fail(label, title, f"no result within {deadline_s:g} s")
            raise StepFailed(title) from None
        except StepFailed as exc:
            self._fail(label, title, str(exc))
            raise StepFailed(title) from None
        except Exception as exc:  # shown in the transcript, then the script stops
            self._fail(label, title, f"{type(exc).__name__}: {exc}")
            raise StepFailed(title) from exc
        elapsed = time.monotonic() - began
        self.results.append((title, True, ""))
        self.line(f"  ✓ {label} ({elapsed:.1f} s)")

    def _fail(self, label: str, title: str, reason: str) -> None:
        self.results.append((title, False, reason))
        self.line(f"  ✗ {label}: {reason}")


def _short(text: str, limit: int = SHOW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the demo user


@attrs.define
class Observer:
    """Syncs as the demo user in the background and keeps what it saw.

    ``wait_for(predicate)`` re-checks the predicate after every sync batch.
    """

    client: MatrixClient
    timeline: list[tuple[str, RoomEvent]] = attrs.Factory(list)
    invites: dict[str, dict[str, dict[str, Any]]] = attrs.Factory(dict)  # room -> type -> content
    typing: dict[str, set[str]] = attrs.Factory(dict)
    # (timeline length when it arrived, room, users typing): every m.typing update
    typing_updates: list[tuple[int, str, frozenset[str]]] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)
    last_event_at: dict[tuple[str, str], float] = attrs.Factory(dict)  # (room, sender) -> time

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        syncer = self.client.syncer(since=None, filter_id=None, long_poll_ms=10_000)
        first = True
        while True:
            batch = await syncer.next()
            now = trio.current_time()
            for item in batch.events:
                self.timeline.append((item.room_id, item.event))
                self.last_event_at[(item.room_id, item.event.sender)] = now
            for invite in batch.invites:
                self.invites[invite.room_id] = {s.type: s.content for s in invite.state}
            for room_id, joined in batch.response.rooms.join.items():
                for ephemeral in joined.ephemeral.events:
                    if ephemeral.get("type") == "m.typing":
                        users = frozenset(ephemeral.get("content", {}).get("user_ids", []))
                        self.typing[room_id] = set(users)
                        self.typing_updates.append((len(self.timeline), room_id, users))
            self._changed.set()
            self._changed = trio.Event()
            if first:
                first = False
                task_status.started()

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        while True:
            result = predicate()
            if result:
                return result
            await self._changed.wait()

    async def changed(self) -> None:
        """Wait for the next sync batch."""
        await self._changed.wait()

    def mark(self) -> int:
        return len(self.timeline)

    def events_since(self, mark: int, room_id: str, sender: str | None = None) -> list[RoomEvent]:
        return [
            e
            for r, e in self.timeline[mark:]
            if r == room_id and (sender is None or e.sender == sender)
        ]


@attrs.define
class Script:
    """The scripted conversation, one method per step."""

    user: MatrixClient
    observer: Observer
    bot_id: str
    locale: str
    tr: Transcript
    dm: str | None = None
    space: str | None = None
    room: str | None = None

    def msg(self, key: str, **fields: Any) -> str:
        """A bot text from the catalogue (to recognise the bot's answers)."""
        return t(self.locale, key, **fields)

    def say(self, key: str) -> str:
        """What the demo user writes, in the demo's locale."""
        return USER_LINES.get(self.locale, USER_LINES["en"])[key]

    async def send_text(self, room_id: str, body: str) -> int:
        mark = self.observer.mark()
        self.tr.detail(f"you: {body}")
        await self.user.send_event(
            room_id, "m.room.message", text_content(body), txn_id=new_txn_id()
        )
        return mark

    def bot_messages(self, mark: int, room_id: str) -> list[RoomEvent]:
        return [
            e
            for e in self.observer.events_since(mark, room_id, self.bot_id)
            if e.type == "m.room.message"
        ]

    async def wait_notice(self, mark: int, room_id: str, match: Callable[[str], bool]) -> str:
        def found() -> str | None:
            for e in self.bot_messages(mark, room_id):
                body = e.content.get("body", "")
                if e.content.get("msgtype") == "m.notice" and match(body):
                    return body
            return None

        body = await self.observer.wait_for(found)
        self.tr.detail(f"bot (notice): {body}")
        return body

    async def wait_reply(self, mark: int, room_id: str) -> str:
        """Follow the bot's streamed reply (first message, then edits) to its end."""
        shown: list[str] = []
        original: str | None = None
        current = ""
        done = 0  # bot messages already looked at

        def progress() -> bool:
            nonlocal original, current, done
            messages = self.bot_messages(mark, room_id)
            for e in messages[done:]:
                content = e.content
                relates = content.get("m.relates_to") or {}
                if original is None:
                    if content.get("msgtype") == "m.text" and not relates:
                        original, current = e.event_id, content.get("body", "")
                elif relates.get("rel_type") == "m.replace" and relates.get("event_id") == original:
                    current = (content.get("m.new_content") or {}).get("body", current)
                if current and (not shown or shown[-1] != current):
                    shown.append(current)
                    self.tr.detail(f"bot (streaming): {_short(current)}")
            done = len(messages)
            return False

        def quiet_needed() -> float | None:
            """How long the room must stay quiet for the reply to count as complete;
            None while the bot is still typing."""
            # The bot types from the start of the turn and stops just before its final
            # edit. A short turn may start and stop typing between two syncs (or before
            # the typing request went out), so no typing at all is possible too.
            updates = [u for i, r, u in self.observer.typing_updates if r == room_id and i >= mark]
            if updates and self.bot_id in updates[-1]:
                return None
            if any(self.bot_id in u for u in updates):
                return REPLY_QUIET_S
            return REPLY_QUIET_NO_TYPING_S

        while True:
            progress()
            remaining = math.inf
            needed = quiet_needed()
            if original is not None and needed is not None:
                last = self.observer.last_event_at.get((room_id, self.bot_id), 0.0)
                remaining = last + needed - trio.current_time()
                if remaining <= 0:
                    break
            with trio.move_on_after(remaining):
                await self.observer.changed()
        progress()
        if original is None:
            raise StepFailed("the bot sent no reply")
        self.tr.detail(f"bot (final): {current}")
        return current

    # ---- steps ------------------------------------------------------------

    async def open_dm(self) -> None:
        self.tr.detail(f"you: create a direct chat and invite {self.bot_id}")
        self.dm = await self.user.create_room(
            invite=[self.bot_id], is_direct=True, preset="trusted_private_chat"
        )
        dm = self.dm

        def bot_joined() -> bool:
            return any(
                e.type == "m.room.member"
                and e.state_key == self.bot_id
                and e.content.get("membership") == "join"
                for r, e in self.observer.timeline
                if r == dm
            )

        await self.observer.wait_for(bot_joined)
        self.tr.detail("bot joined the direct chat")

    async def workspace_appears(self) -> None:
        chat_name = self.msg("first_chat_name", n=1)

        def find() -> tuple[str, str] | None:
            space = room = None
            for room_id, state in self.observer.invites.items():
                if (state.get("m.room.create") or {}).get("type") == "m.space":
                    space = room_id
                elif (state.get("m.room.name") or {}).get("name") == chat_name:
                    room = room_id
            return (space, room) if space and room else None

        self.space, self.room = await self.observer.wait_for(find)
        space_name = (self.observer.invites[self.space].get("m.room.name") or {}).get("name")
        self.tr.detail(f"invited to the Space «{space_name}» and to «{chat_name}»; joining both")
        await self.user.join(self.space)
        await self.user.join(self.room)
        welcome = self.msg("welcome", name="").split(",")[0]  # "Привет" / "Hi"
        room = self.room
        body = await self.observer.wait_for(
            lambda: next(
                (
                    e.content.get("body")
                    for r, e in self.observer.timeline
                    if r == room
                    and e.sender == self.bot_id
                    and e.type == "m.room.message"
                    and e.content.get("body", "").startswith(welcome)
                ),
                None,
            )
        )
        self.tr.detail(f"bot: {_short(body)}")

    async def streamed_reply(self) -> None:
        assert self.room
        mark = await self.send_text(self.room, self.say("hello"))
        await self.wait_reply(mark, self.room)

    async def new_chat(self) -> None:
        assert self.room
        known = set(self.observer.invites)
        prefix = self.msg("chat_created", name="\x00", chat_id="").split("\x00")[0]
        mark = await self.send_text(self.room, "!new")
        await self.wait_notice(mark, self.room, lambda body: body.startswith(prefix))
        new_room = await self.observer.wait_for(
            lambda: next((r for r in self.observer.invites if r not in known), None)
        )
        name = (self.observer.invites[new_room].get("m.room.name") or {}).get("name")
        await self.user.join(new_room)
        self.tr.detail(f"joined the new chat «{name}»; the script continues there")
        self.room = new_room

    async def file_to_agent(self) -> None:
        assert self.room
        data = (self.say("notes") + "\n").encode()
        self.tr.detail(f"you: upload notes.txt ({len(data)} bytes) and send it as m.file")
        url = await self.user.upload(data, content_type="text/plain", filename="notes.txt")
        mark = self.observer.mark()
        content = {
            "msgtype": "m.file",
            "body": "notes.txt",
            "filename": "notes.txt",
            "url": url,
            "info": {"mimetype": "text/plain", "size": len(data)},
        }
        await self.user.send_event(self.room, "m.room.message", content, txn_id=new_txn_id())
        staged = self.msg("file_staged", name="\x00", size="").split("\x00")[0]
        await self.wait_notice(mark, self.room, lambda body: body.startswith(staged))
        mark = await self.send_text(self.room, self.say("what_file"))
        reply = await self.wait_reply(mark, self.room)
        # The agent lists what it received ("Attachments (1): incoming/notes.txt (92
        # bytes)"); on a reused state dir the name may be "notes (1).txt".
        if "Attachments (1)" not in reply or "notes" not in reply:
            raise StepFailed("the agent's reply does not list the file as an attachment")

    async def file_from_agent(self) -> None:
        assert self.room
        text = self.say("report")
        mark = await self.send_text(self.room, f"/file report.txt {text}")
        room = self.room

        def file_event() -> RoomEvent | None:
            for e in self.bot_messages(mark, room):
                if e.content.get("msgtype") == "m.file" and e.content.get("url"):
                    return e
            return None

        event = await self.observer.wait_for(file_event)
        info = event.content.get("info") or {}
        self.tr.detail(
            f"bot (m.file): {event.content.get('body')} "
            f"({info.get('mimetype')}, {info.get('size')} bytes) {event.content['url']}"
        )
        await self.wait_reply(mark, room)
        download = await self.user.download(event.content["url"])
        got = download.data.decode("utf-8", errors="replace")
        self.tr.detail(f"downloaded {len(download.data)} bytes: {_short(got)}")
        if got.strip() != text:
            raise StepFailed(f"downloaded content differs: {got!r}")

    async def list_chats(self) -> None:
        assert self.room
        header = self.msg("chats_header")
        mark = await self.send_text(self.room, "!chats")
        await self.wait_notice(mark, self.room, lambda body: body.startswith(header))


async def play_script(script: Script, tr: Transcript) -> None:
    """Run the steps in order; the first failure stops the script (StepFailed)."""
    steps = [
        ("direct chat: create it and invite the bot", script.open_dm),
        ("workspace: the Space and the first chat appear", script.workspace_appears),
        ("a message gets a streamed reply", script.streamed_reply),
        ("!new creates a second chat", script.new_chat),
        ("a file goes to the agent with the next turn", script.file_to_agent),
        ("the agent sends a file back (/file report.txt)", script.file_from_agent),
        ("!chats lists the chats", script.list_chats),
    ]
    for title, run in steps:
        with tr.step(title):
            await run()


# --------------------------------------------------------------------------- orchestration


@attrs.define
class Credentials:
    """Generated passwords kept in the state directory (reused on the next run)."""

    path: Path
    data: dict[str, str] = attrs.Factory(dict)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, data)

    def password(self, localpart: str) -> str:
        if localpart not in self.data:
            self.data[localpart] = secrets.token_urlsafe(12)
            self.path.write_text(json.dumps(self.data, indent=2))
            self.path.chmod(0o600)
        return self.data[localpart]


async def _ensure_user(hs: LocalSynapse, creds: Credentials, localpart: str) -> bool:
    """Register ``localpart``; False when it existed already (a reused state dir)."""
    try:
        await hs.register(localpart, creds.password(localpart))
    except SynapseError as exc:
        if "M_USER_IN_USE" in str(exc) or "already taken" in str(exc):
            return False
        raise
    return True


def bot_environ(
    hs_url: str, bot_id: str, password: str, agent_url: str, root: Path, locale: str
) -> dict[str, str]:
    """The bot's configuration, as a container deployment would pass it."""
    return {
        "MATRIX_HOMESERVER": hs_url,
        "MATRIX_USER_ID": bot_id,
        "MATRIX_PASSWORD": password,
        "AGENT_BASE_URL": agent_url,
        "SURFACES_WORKSPACE_DIR": str(root / "workspace"),
        "SURFACES_STATE_DIR": str(root / "bot"),
        "SURFACES_BOT__LOCALE": locale,
        "SURFACES_BOT__SHUTDOWN_GRACE_S": str(BOT_GRACE_S),
        "SURFACES_LOG__LEVEL": "info",
    }


@attrs.define
class Demo:
    opts: DemoOptions
    tr: Transcript
    root: Path
    shutdown: trio.Event = attrs.Factory(trio.Event)
    main_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    script_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    app: Any = None  # surfaces.bot.app.BotApp once created
    script_done: bool = False
    interrupted: bool = False

    async def watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            count = 0
            async for _ in signals:
                count += 1
                if count == 1:
                    self.tr.line(
                        "\nstopping: bot (graceful), agent, Synapse… (Ctrl-C again to hurry)"
                    )
                    self.interrupted = not self.script_done
                    self.shutdown.set()
                    self.script_scope.cancel()
                    if self.app is None:
                        self.main_scope.cancel()
                elif count == 2 and self.app is not None:
                    self.app.request_stop(force=True)
                else:
                    self.main_scope.cancel()

    async def run(self) -> int:
        from surfaces.bot.app import BotApp
        from surfaces.config import load_config
        from surfaces.registry import load_registry

        tr, opts, root = self.tr, self.opts, self.root
        for sub in ("workspace", "bot"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        creds = Credentials.load(root / "credentials.json")
        tr.line(f"state directory: {root}")
        tr.line("→ starting Synapse on 127.0.0.1 (a few seconds)…")
        began = time.monotonic()
        async with LocalSynapse.running(
            root / "synapse", port=opts.port, startup_deadline_s=STARTUP_DEADLINE_S
        ) as hs:
            tr.line(f"  ✓ Synapse at {hs.base_url} ({time.monotonic() - began:.1f} s)")
            bot_id = hs.user_id(BOT_LOCALPART)
            with trio.fail_after(STEP_DEADLINE_S):
                await _ensure_user(hs, creds, BOT_LOCALPART)
                localpart, n = DEMO_LOCALPART, 1
                while not await _ensure_user(hs, creds, localpart):
                    n += 1
                    localpart = f"{DEMO_LOCALPART}{n}"
            demo_id, demo_password = hs.user_id(localpart), creds.password(localpart)
            tr.line(f"  ✓ users: bot {bot_id}, demo user {demo_id}")

            async with trio.open_nursery() as nursery:
                agent_port = await nursery.start(
                    lambda task_status: serve_reference_agent(
                        "127.0.0.1",
                        0,
                        root / "workspace",
                        chunk_delay_s=AGENT_CHUNK_DELAY_S,
                        task_status=task_status,
                    )
                )
                agent_url = f"http://127.0.0.1:{agent_port}/"
                tr.line(f"  ✓ reference agent at {agent_url} (workspace {root / 'workspace'})")
                environ = bot_environ(
                    hs.base_url, bot_id, creds.password(BOT_LOCALPART), agent_url, root, opts.locale
                )
                config = load_config(None, environ)
                registry = load_registry(
                    config.agents.registry_path,
                    default_base_url=config.agents.default_base_url,
                    workspace_dir=config.agents.workspace_dir,
                )
                app = BotApp(config, registry)
                self.app = app
                bot_done = trio.Event()

                async def run_bot() -> None:
                    try:
                        await app.run()
                    finally:
                        bot_done.set()

                nursery.start_soon(run_bot)
                failed: str | None = None
                with self.script_scope:
                    with trio.fail_after(STARTUP_DEADLINE_S):
                        await app.wait_ready()
                    tr.line(f"  ✓ bot running as {bot_id} (locale {opts.locale})")
                    tr.line("")
                    failed = await self._play(hs.base_url, demo_id, demo_password, bot_id)
                    self.script_done = True
                    self._summary(failed)
                    if not opts.once:
                        self._login_help(hs.base_url, demo_id, demo_password)
                        await self.shutdown.wait()
                app.request_stop()
                with trio.move_on_after(BOT_STOP_DEADLINE_S):
                    await bot_done.wait()
                if not bot_done.is_set():
                    tr.line("  ! the bot did not stop in time; cancelling it")
                nursery.cancel_scope.cancel()
            tr.line("  ✓ bot and agent stopped; stopping Synapse…")
        tr.line("  ✓ Synapse stopped")
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if failed is None else EXIT_FAILED

    async def _play(self, hs_url: str, demo_id: str, password: str, bot_id: str) -> str | None:
        """The scripted conversation; returns the failing step's title, or None."""
        tr = self.tr
        async with MatrixClient(hs_url) as user:
            with trio.fail_after(STEP_DEADLINE_S):
                await user.login_password(demo_id, password, device_id="DEMOSCRIPT")
            async with trio.open_nursery() as nursery:
                observer = Observer(user)
                with trio.fail_after(STEP_DEADLINE_S):
                    await nursery.start(observer.run)
                script = Script(user, observer, bot_id, self.opts.locale, tr)
                failed: str | None = None
                try:
                    await play_script(script, tr)
                except StepFailed as exc:
                    failed = str(exc)
                nursery.cancel_scope.cancel()
            with trio.move_on_after(5):
                await user.logout()
        return failed

    def _summary(self, failed: str | None) -> None:
        tr = self.tr
        ok = sum(1 for _, good, _ in tr.results if good)
        tr.line("")
        if failed is None:
            tr.line(f"demo: all {ok} steps succeeded")
        else:
            tr.line(f"demo: FAILED at step «{failed}» ({ok} steps succeeded before it)")
            log_path = self.root / "bot.log"
            if not self.opts.verbose:
                errors = _error_lines(log_path)
                if errors:
                    tr.line("      last errors in the bot log:")
                    for row in errors:
                        tr.line(f"        {_short(row, 300)}")
                tr.line(f"      bot log: {log_path}")

    def _login_help(self, hs_url: str, demo_id: str, password: str) -> None:
        self.tr.line(
            "\nThe demo stays up. Log in with a Matrix client (e.g. Element Desktop):\n"
            f"    homeserver: {hs_url}\n"
            f"    user:       {demo_id}\n"
            f"    password:   {password}\n"
            "  Loopback only: the client must run on this machine. Your Space and chats\n"
            "  are there; write in a chat to talk to the reference agent.\n"
            "Press Ctrl-C to stop (bot, agent and Synapse stop cleanly)."
        )


async def run_demo(opts: DemoOptions, out: TextIO) -> int:
    """The demo as a coroutine (``trio.run(run_demo, opts, sys.stdout)``)."""
    owned = opts.state_dir is None
    root = Path(tempfile.mkdtemp(prefix="surfaces-demo-")) if owned else opts.state_dir
    assert root is not None
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    demo = Demo(opts, Transcript(out), root)
    log_file = None if opts.verbose else (root / "bot.log").open("a", encoding="utf-8")
    _configure_logs(log_file)
    code = EXIT_FAILED
    try:
        async with trio.open_nursery() as top:
            top.start_soon(demo.watch_signals)
            with demo.main_scope:
                code = await demo.run()
            if demo.main_scope.cancelled_caught:
                code = EXIT_INTERRUPTED
            top.cancel_scope.cancel()
    except Exception as exc:  # a start-up failure or a crashed bot: say it, exit 1
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
        for error in _leaves(errors):
            demo.tr.line(f"  ✗ demo failed: {type(error).__name__}: {error}")
            if isinstance(error, trio.TooSlowError):
                demo.tr.line("    (a start-up step missed its deadline)")
        if not opts.verbose:
            demo.tr.line(f"    logs: {root / 'bot.log'}, {root / 'synapse' / 'homeserver.log'}")
        code = EXIT_FAILED
    finally:
        if log_file is not None:
            log_file.close()
        # A failed run keeps its temporary state: the logs are what the reader needs.
        if owned and not opts.keep and code != EXIT_FAILED:
            shutil.rmtree(root, ignore_errors=True)
        elif owned:
            demo.tr.line(f"state kept in {root} (delete it when done)")
    return code


def _error_lines(path: Path, limit: int = 5) -> list[str]:
    """The last error lines of the bot log, with the exception line that follows each
    traceback (what a reader of a failed demo needs first)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    picked = [
        row
        for row in lines
        if "[error" in row or (row[:1].isalpha() and "Error: " in row and " " not in row[:5])
    ]
    return picked[-limit:]


def _leaves(errors: Any) -> Iterator[BaseException]:
    for error in errors:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error.exceptions)
        else:
            yield error


def _configure_logs(stream: TextIO | None) -> None:
    from surfaces.logs import configure_logging

    configure_logging("console", "info", stream=stream if stream is not None else sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces demo",
        description="Start a throwaway Synapse on loopback, the reference agent and the "
        "bot; play a scripted conversation; then stay up for a real Matrix client.",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the script (0 only if every step passed)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep everything here (reusable); default: a temporary directory",
    )
    parser.add_argument("--keep", action="store_true", help="do not delete the temporary state")
    parser.add_argument("--port", type=int, help="Synapse port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--locale", choices=("ru", "en"), default="ru", help="bot locale")
    parser.add_argument(
        "--verbose", action="store_true", help="bot logs to stderr instead of DIR/bot.log"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = DemoOptions(
        once=args.once,
        state_dir=args.state_dir,
        keep=args.keep,
        port=args.port,
        locale=args.locale,
        verbose=args.verbose,
    )
    return trio.run(run_demo, opts, sys.stdout)
