"""Agent presence on a real Synapse with presence enabled (issue 15 §1).

A user client watches the bot's Matrix presence follow the reference agent:
``online`` → ``unavailable`` ("default offline") when the agent stops → ``online``
when it is back; ``!status`` says the same in the user's words. The prober runs on a
short interval here (2 s) so the test takes seconds; the logic is the one of the
30 s default. Real sockets, no virtual clock: every wait is bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from e2e_users import SimUser
from test_bot_e2e import STEP_S, BotRig, command

from agent_client.reference import ReferenceAgent, serve_reference_agent
from matrix_client import Presence, PresenceState
from matrix_client.testing import LocalSynapse

pytestmark = pytest.mark.synapse

PRESENCE_S = 30  # a probe every 2 s: a change shows within a few seconds


@pytest.fixture(scope="module")
def synapse_presence() -> Iterator[LocalSynapse]:
    """A Synapse with presence on (the session's one has it off, Synapse's test default)."""
    with LocalSynapse.running_blocking(
        ratelimits="lifted", extra_config={"presence": {"enabled": True}}
    ) as hs:
        yield hs


async def register(hs: LocalSynapse, prefix: str, displayname: str):
    localpart = f"{prefix}-presence-{uuid.uuid4().hex[:8]}"
    return await hs.register(localpart, f"pw-{uuid.uuid4().hex}", displayname=displayname)


async def wait_presence(
    user: SimUser, bot_id: str, presence: Presence, status_msg: str | None = None
) -> PresenceState:
    """Poll the bot's presence until it is ``presence`` with ``status_msg`` (None: no
    status message) — what a user's client shows."""
    seen: PresenceState | None = None
    try:
        with trio.fail_after(PRESENCE_S):
            while True:
                seen = await user.client.get_presence(bot_id)
                if seen.presence is presence and (seen.status_msg or None) == status_msg:
                    return seen
                await trio.sleep(0.25)
    except trio.TooSlowError:
        raise AssertionError(f"not {presence} / {status_msg!r} in time; last: {seen}") from None


async def test_bot_presence_follows_its_agent(synapse_presence: LocalSynapse, tmp_path: Path):
    hs = synapse_presence
    account = await register(hs, "bot", "Surfaces")
    workspace = tmp_path / "agents"
    workspace.mkdir()
    agent = ReferenceAgent(workspace, chunk_delay_s=0.02)
    async with trio.open_nursery() as nursery:

        async def serve_agent(port: int) -> tuple[trio.CancelScope, int]:
            scope = trio.CancelScope()

            async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
                with scope:
                    await serve_reference_agent(
                        "127.0.0.1", port, workspace, agent=agent, task_status=task_status
                    )

            return scope, await nursery.start(run)

        agent_scope, port = await serve_agent(0)
        rig = BotRig(
            hs=hs,
            account=account,
            state_dir=tmp_path / "state",
            workspace=workspace,
            agent=agent,
            agent_url=f"http://127.0.0.1:{port}/agent_0/",
            nursery=nursery,
            env={
                "SURFACES_MATRIX__ENCRYPTION": "false",
                "SURFACES_PRESENCE__PROBE_INTERVAL_S": "2",
                "SURFACES_PRESENCE__PROBE_JITTER_S": "0.5",
            },
        )
        await rig.start()
        bot = rig.bot_id
        alice_account = await register(hs, "alice", "Alice")
        async with SimUser.open(hs, alice_account, e2ee=False) as alice:
            with trio.fail_after(STEP_S):
                rooms = await alice.onboard(bot)
            chat = rooms.chat_id
            await wait_presence(alice, bot, Presence.ONLINE)
            body = await command(alice, chat, bot, "!status", "Агент:")
            assert body.splitlines()[0] == "Агент: Agent (в сети, был на связи только что)"

            agent_scope.cancel()  # the agent stops listening
            await wait_presence(alice, bot, Presence.UNAVAILABLE, "default offline")
            body = await command(alice, chat, bot, "!status", "Агент:")
            assert body.splitlines()[0].startswith("Агент: Agent (не в сети, ")
            # Synapse counts the bot's notice as activity ("online"); the bot sets
            # "unavailable" again shortly after its sends.
            await wait_presence(alice, bot, Presence.UNAVAILABLE, "default offline")

            agent_scope, _ = await serve_agent(port)  # back, on the same address
            await wait_presence(alice, bot, Presence.ONLINE)
            body = await command(alice, chat, bot, "!status", "Агент:")
            assert body.splitlines()[0].startswith("Агент: Agent (в сети, ")

        await rig.stop()
        # offline at shutdown
        async with SimUser.open(hs, alice_account, e2ee=False) as alice:
            await wait_presence(alice, bot, Presence.OFFLINE)
        nursery.cancel_scope.cancel()
