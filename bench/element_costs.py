"""What an edit re-run and a regenerate (🔁) cost, next to a plain turn.

The whole bot in-process on the real clock against the fake homeserver (its request
log counts exactly what the bot asks the homeserver) and the reference agent over
memory streams (instant: its echo reply ends inside the first-message window). For
each of ``--turns`` rounds: a plain message, an edit of it (the turn re-run into the
same reply) and a 🔁 on the reply (regenerated into it). Per operation: the bot's
Matrix requests (``/sync`` apart) and the time from the user's event to the reply
showing the new text (bot-side cost: the fake answers in microseconds).

    python -m bench element_costs [--turns 20]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_server_stream

from agent_client.reference import ReferenceAgent
from matrix_client.testing import FakeHomeserver
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry

DEADLINE_S = 30.0


def _shown(hs: FakeHomeserver, room: str, bot: str) -> dict[str, str]:
    """The bot's messages as a client shows them: event id → body (edits applied)."""
    shown: dict[str, str] = {}
    for e in hs.timeline(room):
        if e.get("sender") != bot or e.get("type") != "m.room.message":
            continue
        rel = e["content"].get("m.relates_to") or {}
        if rel.get("rel_type") == "m.replace":
            if rel["event_id"] in shown:
                shown[rel["event_id"]] = e["content"]["m.new_content"]["body"]
        else:
            shown[e["event_id"]] = e["content"]["body"]
    return shown


async def _until(predicate: Callable[[], bool]) -> float:
    """Seconds until ``predicate()`` holds, polled every millisecond (the fake
    homeserver has no hook for "the bot's message changed"; 1 ms is the resolution)."""
    start = time.perf_counter()
    with trio.fail_after(DEADLINE_S):
        while not predicate():  # noqa: ASYNC110 - polling the room, as a client would
            await trio.sleep(0.001)
    return time.perf_counter() - start


def _reply_to(hs: FakeHomeserver, room: str, bot: str, text: str, skip: set[str]) -> str | None:
    """The bot's message (not in ``skip``) that shows ``text``."""
    return next((e for e, b in _shown(hs, room, bot).items() if text in b and e not in skip), None)


def _has_reply(hs: FakeHomeserver, room: str, bot: str, text: str, skip: set[str]) -> bool:
    return _reply_to(hs, room, bot, text, skip) is not None


def _shows(hs: FakeHomeserver, room: str, bot: str, event_id: str, text: str) -> bool:
    return text in _shown(hs, room, bot)[event_id]


def _changed(hs: FakeHomeserver, room: str, bot: str, event_id: str, before: str) -> bool:
    return _shown(hs, room, bot)[event_id] != before


async def run(turns: int) -> dict[str, Any]:
    hs = FakeHomeserver()
    bot_user = hs.register("bot", displayname="Surfaces")
    alice = hs.register("alice", displayname="Alice")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "agents"
        workspace.mkdir()
        agent = ReferenceAgent(workspace, chunk_delay_s=0)
        environ = {
            "MATRIX_HOMESERVER": hs.base_url,
            "MATRIX_USER_ID": bot_user.user_id,
            "MATRIX_PASSWORD": bot_user.password,
            "AGENT_BASE_URL": "http://agent.test/agent_0/",
            "SURFACES_WORKSPACE_DIR": str(workspace),
            "SURFACES_STATE_DIR": str(Path(tmp) / "state"),
            "SURFACES_LOG__LEVEL": "warning",
            # The simulated user sends in clear: unencrypted rooms (E2EE costs are the
            # turn benchmark's "instant, E2EE" row).
            "SURFACES_MATRIX__ENCRYPTION": "false",
        }
        config = load_config(None, environ)
        registry = load_registry(
            None,
            default_base_url=config.agents.default_base_url,
            workspace_dir=config.agents.workspace_dir,
        )
        async with trio.open_nursery() as nursery:

            async def connector(target: Any) -> trio.abc.Stream:
                client_end, server_end = trio.testing.memory_stream_pair()

                async def serve() -> None:
                    gone = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionClosed)
                    with contextlib.suppress(*gone):
                        await agent.handle(await wrap_server_stream(nursery, server_end))

                nursery.start_soon(serve)
                return client_end

            app = BotApp(
                config,
                registry,
                transport=httpx.MockTransport(hs.handle),
                agent_connector=connector,
            )
            nursery.start_soon(app.run)
            await app.wait_ready()
            hs.invite_bot(bot_user, inviter=alice)
            store = app.store
            assert store is not None
            with trio.fail_after(DEADLINE_S):
                while not await store.chats_of(alice.user_id):  # noqa: ASYNC110 - provisioning
                    await trio.sleep(0.01)
            user = await store.get_user(alice.user_id)
            assert user is not None
            assert user.space_id
            hs.join_as(alice, user.space_id)
            room = (await store.chats_of(alice.user_id))[0].room_id
            hs.join_as(alice, room)
            await trio.sleep(0.5)
            bot = bot_user.user_id
            results = await _rounds(hs, room, alice, bot, turns)
            app.request_stop(force=True)
    return results


async def _rounds(hs: FakeHomeserver, room: str, alice, bot: str, turns: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"plain turn": [], "edit re-run": [], "regenerate": []}
    requests: dict[str, Counter[str]] = {name: Counter() for name in samples}

    def bot_requests() -> int:
        return sum(1 for r in hs.requests if r.user_id == bot and not r.path.endswith("/sync"))

    def count(name: str, before_requests: int, before_index: int) -> None:
        requests[name]["total"] += bot_requests() - before_requests
        for r in hs.requests[before_index:]:
            if r.user_id == bot and not r.path.endswith("/sync"):
                requests[name][
                    f"{r.method} {r.path.split('/')[-3 if 'send' in r.path else -1]}"
                ] += 1

    for i in range(turns):
        n0, i0 = bot_requests(), len(hs.requests)
        before = set(_shown(hs, room, bot))
        asked = hs.text_as(alice, room, f"question {i}")
        said = f"«question {i}»"
        samples["plain turn"].append(await _until(partial(_has_reply, hs, room, bot, said, before)))
        await trio.sleep(0.3)  # let the turn's last requests land before counting
        count("plain turn", n0, i0)
        reply = _reply_to(hs, room, bot, said, before)
        assert reply is not None

        n0, i0 = bot_requests(), len(hs.requests)
        hs.send_as(
            alice,
            room,
            {
                "msgtype": "m.text",
                "body": f"* question {i} (edited)",
                "m.new_content": {"msgtype": "m.text", "body": f"question {i} (edited)"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": asked},
            },
        )
        samples["edit re-run"].append(
            await _until(partial(_shows, hs, room, bot, reply, f"«question {i} (edited)»"))
        )
        await trio.sleep(0.3)
        count("edit re-run", n0, i0)

        n0, i0 = bot_requests(), len(hs.requests)
        shown_before = _shown(hs, room, bot)[reply]
        relates = {"rel_type": "m.annotation", "event_id": reply, "key": "\U0001f501\ufe0f"}
        hs.send_as(alice, room, {"m.relates_to": relates}, event_type="m.reaction")
        samples["regenerate"].append(
            await _until(partial(_changed, hs, room, bot, reply, shown_before))
        )
        await trio.sleep(0.3)
        count("regenerate", n0, i0)
    return {
        name: {
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
            "requests_per_op": round(requests[name]["total"] / turns, 2),
            "by_endpoint": {
                k: v / turns for k, v in sorted(requests[name].items()) if k != "total"
            },
        }
        for name, values in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    results = trio.run(run, args.turns)
    print("| operation | requests / op | by endpoint | p50 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        endpoints = ", ".join(f"{k} {v:g}" for k, v in r["by_endpoint"].items())
        print(f"| {name} | {r['requests_per_op']} | {endpoints} | {r['p50_ms']} | {r['max_ms']} |")
    return 0
