"""Shared fixtures. ``harness``: the bot in-process — a fake homeserver, the reference
agent over memory streams, and ``BotApp`` on trio's virtual clock (``autojump_clock``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import structlog
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, wrap_server_stream

from agent_client.reference import ReferenceAgent
from matrix_client.testing import FakeHomeserver, FakeUser
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry

AGENT_URL = "http://agent.test/agent_0/"

# Tests log what the bot logs, exceptions included; structlog's default renderer draws
# them with rich and every frame's locals, which cost seconds in the tests that provoke
# failures on purpose. Plain tracebacks carry the same information.
structlog.configure(
    processors=[
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)


@pytest.fixture(autouse=True)
def _keep_the_suites_structlog_config():
    """A test that configures logging the way a command does (``doctor``'s
    ``configure_logging(..., "warning")``, the logging tests) must not change what
    later tests log or capture (``structlog.testing.capture_logs`` sees nothing below
    the level such a configuration filters)."""
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


@attrs.define
class BotHarness:
    hs: FakeHomeserver
    bot_user: FakeUser
    app: BotApp
    agent: ReferenceAgent
    workspace: Path
    state_dir: Path
    nursery: trio.Nursery
    app_done: trio.Event | None = None
    #: Environment overrides kept across restarts (``restart(**env)`` adds to it).
    env: dict[str, str] = attrs.Factory(dict)
    #: Serve agent connections with this instead of ``agent.handle`` (scripted agents).
    agent_handler: Callable[[WebSocketRequest], Awaitable[None]] | None = None
    #: Raise this from the agent connector (e.g. ``OSError``: agent unreachable).
    connect_error: BaseException | None = None
    app_scope: trio.CancelScope | None = None
    kill_transport: Callable[[], None] = lambda: None
    crashed: bool = False

    def user(self, localpart: str, displayname: str | None = None) -> FakeUser:
        return self.hs.register(localpart, displayname=displayname)

    async def settle(self, seconds: float = 5.0) -> None:
        """Let virtual time pass so the bot handles what is pending."""
        await trio.sleep(seconds)

    def bot_messages(self, room_id: str) -> list[dict[str, Any]]:
        """The bot's visible messages in a room, edits applied (what a client shows)."""
        events = self.hs.timeline(room_id)
        shown: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        redacted = {
            e.get("redacts") or e.get("content", {}).get("redacts")
            for e in events
            if e["type"] == "m.room.redaction"
        }
        for e in events:
            if e["sender"] != self.bot_user.user_id or e["type"] != "m.room.message":
                continue
            content = e["content"]
            rel = content.get("m.relates_to") or {}
            if rel.get("rel_type") == "m.replace":
                if rel["event_id"] in shown:
                    shown[rel["event_id"]] = content["m.new_content"]
                continue
            if e["event_id"] in redacted:
                continue
            shown[e["event_id"]] = content
            order.append(e["event_id"])
        return [shown[i] for i in order if i in shown]

    def bot_texts(self, room_id: str) -> list[str]:
        return [m["body"] for m in self.bot_messages(room_id)]

    async def onboard(self, user: FakeUser) -> tuple[str, str, str]:
        """Invite the bot to a DM; returns (dm, space, first chat room)."""
        dm = self.hs.invite_bot(self.bot_user, inviter=user)
        await self.settle()
        record = await self.app.store.get_user(user.user_id)
        assert record is not None, "workspace was not provisioned"
        assert record.space_id, "workspace was not provisioned"
        chats = await self.app.store.chats_of(user.user_id)
        assert chats, "no first chat"
        self.hs.join_as(user, record.space_id)
        self.hs.join_as(user, chats[0].room_id)
        await self.settle()
        return dm, record.space_id, chats[0].room_id

    async def restart(self, **env: str) -> None:
        """Stop the bot gracefully and start a new one on the same state."""
        self.app.request_stop()
        assert self.app_done is not None
        await self.app_done.wait()
        await start_app(self, **env)

    async def start(self, **env: str) -> None:
        """Start a new bot on the same state (after ``crash()``)."""
        await start_app(self, **env)

    async def crash(self) -> None:
        """Kill the bot abruptly, as a crash would: no graceful path runs.

        Committed SQLite transactions survive (as after a real crash); the
        database connection is closed first and the homeserver stops answering
        the old app, so cleanup code (shielded finalizers) can neither write
        state nor send anything. Start a new bot with ``start_app(h)``."""
        assert self.app_scope is not None
        assert self.app_done is not None
        self.crashed = True
        self.kill_transport()
        if self.app.store is not None:
            self.app.store.close()
        self.app_scope.cancel()
        await self.app_done.wait()
        self.crashed = False

    def bot_events(self, room_id: str, event_type: str = "m.room.message") -> list[dict[str, Any]]:
        """Raw events the bot sent to the room (edits included), in order."""
        return self.hs.messages_from(self.bot_user, room_id, event_type)


async def start_app(h: BotHarness, **env: str) -> None:
    environ = {
        "MATRIX_HOMESERVER": h.hs.base_url,
        "MATRIX_USER_ID": h.bot_user.user_id,
        "MATRIX_PASSWORD": h.bot_user.password,
        "MATRIX_DEVICE_ID": "SURFACESBOT",
        "AGENT_BASE_URL": AGENT_URL,
        "SURFACES_WORKSPACE_DIR": str(h.workspace),
        "SURFACES_STATE_DIR": str(h.state_dir),
        "SURFACES_BOT__SHUTDOWN_GRACE_S": "5",
        # The behaviour tests read the bot's messages from the fake homeserver's
        # timeline in clear; the encrypted bot has its own tests (harness env
        # SURFACES_MATRIX__ENCRYPTION=true, tests/surfaces/session/).
        "SURFACES_MATRIX__ENCRYPTION": "false",
    }
    h.env.update(env)
    environ.update(h.env)
    config = load_config(None, environ)
    registry = load_registry(
        config.agents.registry_path,
        default_base_url=config.agents.default_base_url,
        workspace_dir=config.agents.workspace_dir,
    )

    async def connector(target: Any) -> trio.abc.Stream:
        if h.connect_error is not None:
            raise h.connect_error
        client_end, server_end = trio.testing.memory_stream_pair()

        async def serve() -> None:
            try:
                request = await wrap_server_stream(h.nursery, server_end)
                await (h.agent_handler or h.agent.handle)(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionClosed):
                pass  # the bot went away (crash, cancel): not the test's concern

        h.nursery.start_soon(serve)
        return client_end

    dead = trio.Event()  # set: this app "crashed"; its requests never reach the server

    async def handle(request: httpx.Request) -> httpx.Response:
        if dead.is_set():
            await trio.sleep_forever()
        return await h.hs.handle(request)

    app = BotApp(
        config,
        registry,
        transport=httpx.MockTransport(handle),
        agent_connector=connector,
        store_inline=True,
    )
    h.kill_transport = dead.set
    h.app = app
    done = trio.Event()
    h.app_done = done
    scope = trio.CancelScope()
    h.app_scope = scope

    async def run() -> None:
        try:
            with scope:
                await app.run()
        except Exception:
            if not h.crashed:
                raise
        finally:
            dead.set()
            done.set()

    h.nursery.start_soon(run)
    await app.wait_ready()
    h.crashed = False


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[BotHarness]:
    hs = FakeHomeserver()
    bot_user = hs.register("bot", displayname="Surfaces")
    workspace = tmp_path / "agents"
    workspace.mkdir()
    agent = ReferenceAgent(workspace, chunk_delay_s=0.05)
    async with trio.open_nursery() as nursery:
        h = BotHarness(hs, bot_user, None, agent, workspace, tmp_path / "state", nursery)  # type: ignore[arg-type]
        await start_app(h)
        yield h
        h.app.request_stop(force=True)
        nursery.cancel_scope.cancel()


HarnessFactory = Callable[..., BotHarness]
