"""The demo's orchestration: Synapse, the users, the reference agent, the bot, the script.

One trio program owns everything in nested scopes, so an exit path (the script's end,
a failure, Ctrl-C) stops them in reverse order: the bot gracefully, then the agent,
then Synapse. Signals are two-stage: the first Ctrl-C starts the graceful stop, the
second skips the bot's grace period, a third cancels everything.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs
import trio

from agent_client.reference import serve_reference_agent
from matrix_client import MatrixClient
from matrix_client.testing import CryptoUser, LocalSynapse
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry

from ._conversation import Conversation
from ._credentials import Credentials, ensure_user
from ._observer import Observer
from ._script import play_script
from ._transcript import STEP_DEADLINE_S, StepFailed, Transcript, short

BOT_LOCALPART = "surfaces-bot"
DEMO_LOCALPART = "demo"
STARTUP_DEADLINE_S = 90.0
BOT_GRACE_S = 5.0
BOT_STOP_DEADLINE_S = BOT_GRACE_S + 20.0
# The reference agent pauses between the chunks of its echo reply, so the streamed
# edits are visible (the bot's first edit comes after 0.8 s, then at most one a second).
AGENT_CHUNK_DELAY_S = 0.6
LOGOUT_DEADLINE_S = 5.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@attrs.frozen
class DemoOptions:
    """The command line of ``surfaces demo`` (see :func:`surfaces.demo.main`)."""

    once: bool = False
    state_dir: Path | None = None
    keep: bool = False
    port: int | None = None
    locale: str = "ru"
    verbose: bool = False


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


@attrs.frozen
class DemoUser:
    """The account the script plays (and a person may log in with afterwards)."""

    user_id: str
    password: str


@attrs.define
class Demo:
    """One run: what was started, and the scopes the signal handler cancels."""

    opts: DemoOptions
    tr: Transcript
    root: Path
    shutdown: trio.Event = attrs.Factory(trio.Event)
    main_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    script_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    app: BotApp | None = None
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
        tr, opts, root = self.tr, self.opts, self.root
        for sub in ("workspace", "bot"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        creds = Credentials.load(root / "credentials.json")
        tr.line(f"state directory: {root}")
        tr.line("→ starting Synapse on 127.0.0.1 (a few seconds)…")
        began = time.monotonic()
        async with LocalSynapse.running(
            root / "synapse",
            port=opts.port,
            startup_deadline_s=STARTUP_DEADLINE_S,
            # presence on: a client logged in to the demo sees the bot's presence
            # follow its agent (online, unavailable "default offline")
            extra_config={"presence": {"enabled": True}},
        ) as hs:
            tr.line(f"  ✓ Synapse at {hs.base_url} ({time.monotonic() - began:.1f} s)")
            bot_id = hs.user_id(BOT_LOCALPART)
            demo_user = await self._register_users(hs, creds)
            tr.line(f"  ✓ users: bot {bot_id}, demo user {demo_user.user_id}")
            async with trio.open_nursery() as nursery:
                agent_url = await self._start_agent(nursery)
                environ = bot_environ(
                    hs.base_url, bot_id, creds.password(BOT_LOCALPART), agent_url, root, opts.locale
                )
                failed = await self._run_bot_and_script(
                    nursery, environ, hs.base_url, bot_id, demo_user
                )
                nursery.cancel_scope.cancel()
            tr.line("  ✓ bot and agent stopped; stopping Synapse…")
        tr.line("  ✓ Synapse stopped")
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if failed is None else EXIT_FAILED

    async def _register_users(self, hs: LocalSynapse, creds: Credentials) -> DemoUser:
        """The bot and a demo user; on a reused state dir a fresh ``demoN`` user, so
        the onboarding shows again."""
        with trio.fail_after(STEP_DEADLINE_S):
            await ensure_user(hs, creds, BOT_LOCALPART)
            localpart, n = DEMO_LOCALPART, 1
            while not await ensure_user(hs, creds, localpart):
                n += 1
                localpart = f"{DEMO_LOCALPART}{n}"
        return DemoUser(hs.user_id(localpart), creds.password(localpart))

    async def _start_agent(self, nursery: trio.Nursery) -> str:
        workspace = self.root / "workspace"
        agent_port = await nursery.start(
            lambda task_status: serve_reference_agent(
                "127.0.0.1",
                0,
                workspace,
                chunk_delay_s=AGENT_CHUNK_DELAY_S,
                task_status=task_status,
            )
        )
        agent_url = f"http://127.0.0.1:{agent_port}/"
        self.tr.line(f"  ✓ reference agent at {agent_url} (workspace {workspace})")
        return agent_url

    async def _run_bot_and_script(
        self,
        nursery: trio.Nursery,
        environ: dict[str, str],
        hs_url: str,
        bot_id: str,
        demo_user: DemoUser,
    ) -> str | None:
        """Start the bot, play the script, stay up unless ``--once``, stop the bot.

        Returns the failing step's title, or None.
        """
        tr, opts = self.tr, self.opts
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
            crypto = app.crypto
            e2ee = f"end-to-end encryption on, device {crypto.device_id}" if crypto else "no E2EE"
            tr.line(f"  ✓ bot running as {bot_id} (locale {opts.locale}, {e2ee})")
            tr.line("")
            failed = await self._play(hs_url, demo_user, bot_id)
            self.script_done = True
            self._summary(failed)
            if not opts.once:
                self._login_help(hs_url, demo_user)
                await self.shutdown.wait()
        app.request_stop()
        with trio.move_on_after(BOT_STOP_DEADLINE_S):
            await bot_done.wait()
        if not bot_done.is_set():
            tr.line("  ! the bot did not stop in time; cancelling it")
        return failed

    async def _play(self, hs_url: str, demo_user: DemoUser, bot_id: str) -> str | None:
        """The scripted conversation; returns the failing step's title, or None."""
        async with MatrixClient(hs_url) as user:
            with trio.fail_after(STEP_DEADLINE_S):
                await user.login_password(
                    demo_user.user_id, demo_user.password, device_id="DEMOSCRIPT"
                )
            with trio.fail_after(STEP_DEADLINE_S):
                crypto = await CryptoUser.start(user)  # the demo user's E2EE device
            async with trio.open_nursery() as nursery:
                observer = Observer(user, crypto)
                with trio.fail_after(STEP_DEADLINE_S):
                    await nursery.start(observer.run)
                conversation = Conversation(user, observer, bot_id, self.opts.locale, self.tr)
                failed: str | None = None
                try:
                    await play_script(conversation)
                except StepFailed as exc:
                    failed = str(exc)
                nursery.cancel_scope.cancel()
            with trio.move_on_after(LOGOUT_DEADLINE_S):
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
                errors = error_lines(log_path)
                if errors:
                    tr.line("      last errors in the bot log:")
                    for row in errors:
                        tr.line(f"        {short(row, 300)}")
                tr.line(f"      bot log: {log_path}")

    def _login_help(self, hs_url: str, demo_user: DemoUser) -> None:
        self.tr.line(
            "\nThe demo stays up. Log in with a Matrix client (e.g. Element Desktop):\n"
            f"    homeserver: {hs_url}\n"
            f"    user:       {demo_user.user_id}\n"
            f"    password:   {demo_user.password}\n"
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


def error_lines(path: Path, limit: int = 5) -> list[str]:
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
