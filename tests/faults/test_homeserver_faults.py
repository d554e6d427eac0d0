"""Homeserver faults through the whole bot (harness, virtual time).

Each test's docstring says what the user sees; the test asserts exactly that.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from fault_helpers import INTERRUPTED, answers_next_message, outage, top_level_bot_messages

from matrix_client import UnknownTokenError
from matrix_client.testing import FakeHomeserver, Fault
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry
from surfaces.core import FatalError

SLOW_REPLY = "/slow 2 6"  # reference agent: 6 chunks, 2 s apart (~10 s of streaming)


async def _onboarded(h):
    alice = h.user("alice", displayname="Alice")
    _, _, room = await h.onboard(alice)
    assert len(top_level_bot_messages(h, room)) == 1  # the welcome
    return alice, room


def _assert_one_complete_reply(h, room: str, expected_bubbles: int, needle: str) -> None:
    bubbles = top_level_bot_messages(h, room)
    assert len(bubbles) == expected_bubbles, [b["content"]["body"] for b in bubbles]
    last = h.bot_texts(room)[-1]
    assert needle in last
    assert INTERRUPTED not in last


async def test_homeserver_down_30s_mid_stream_then_recovers(harness, autojump_clock):
    """User sees: the streaming reply pauses while the homeserver is down for 30 s,
    then completes — one reply bubble, full text, not doubled, nothing lost; a
    message sent during the outage is answered too."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, SLOW_REPLY)
    await trio.sleep(3)  # first chunk posted, the turn is streaming

    async def during() -> None:
        await trio.sleep(5)
        h.hs.text_as(alice, room, "sent while down")  # stored by the server, synced later

    async with trio.open_nursery() as n:
        n.start_soon(during)
        refused = await outage(h.hs, 30)
    assert refused > 0
    await h.settle(120)
    texts = h.bot_texts(room)
    assert len(top_level_bot_messages(h, room)) == 3, texts  # welcome + 2 replies
    assert "slow 6/6" in texts[1]
    assert INTERRUPTED not in texts[1]
    assert "«sent while down»" in texts[2]
    await answers_next_message(h, alice, room)


async def test_homeserver_down_30s_before_message(harness, autojump_clock):
    """User sees: a message sent while the homeserver (for the bot) was unreachable
    for 30 s is answered exactly once after it comes back."""
    h = harness
    alice, room = await _onboarded(h)
    async with trio.open_nursery() as n:
        n.start_soon(outage, h.hs, 30)
        await trio.sleep(1)
        h.hs.text_as(alice, room, "hello during outage")
    await h.settle(120)
    _assert_one_complete_reply(h, room, 2, "«hello during outage»")


@pytest.mark.parametrize("pattern", ["/sync", "/rooms/*/send/*"])
async def test_homeserver_500s(harness, autojump_clock, pattern):
    """User sees: nothing unusual — a burst of 500s (on /sync or on sends) only
    delays the reply; exactly one complete reply."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject(None, pattern, Fault.error(500, "M_UNKNOWN", "boom"), repeat=8)
    h.hs.text_as(alice, room, "hello through 500s")
    await h.settle(180)
    assert h.hs.pending_faults() == 0
    _assert_one_complete_reply(h, room, 2, "«hello through 500s»")


async def test_single_500_on_first_reply_message_keeps_full_text(harness, autojump_clock):
    """User sees: one 500 on the reply's first message (retried after ~0.4 s, while
    the agent finishes streaming) — still one bubble with the *complete* reply.
    Minimal reproducer for the stale-outbox-row bug (see README, bug B1)."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject("PUT", "/rooms/*/send/*", Fault.error(500, "M_UNKNOWN", "boom"))
    h.hs.text_as(alice, room, "hello after one 500")
    await h.settle(60)
    _assert_one_complete_reply(h, room, 2, "«hello after one 500»")


async def test_homeserver_502_html_pages(harness, autojump_clock):
    """User sees: a reverse proxy answering 502 HTML pages for a while delays the
    reply; exactly one complete reply."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject(None, "/_matrix/*", Fault.http_status(502), repeat=12)
    h.hs.text_as(alice, room, "hello through 502s")
    await h.settle(180)
    _assert_one_complete_reply(h, room, 2, "«hello through 502s»")


@pytest.mark.parametrize(
    "fault",
    [Fault.rate_limited(retry_after_s=3), Fault.rate_limited(retry_after_ms=2500)],
    ids=["retry-after-header", "retry_after_ms"],
)
async def test_homeserver_429_storm(harness, autojump_clock, fault):
    """User sees: under a 429 storm on every send the reply arrives later, once,
    complete; the bot waits as told (no hammering: requests ≈ faults + successes)."""
    h = harness
    alice, room = await _onboarded(h)
    sends_before = len(h.hs.requests_to("PUT", "/rooms/*/send/*"))
    h.hs.inject("PUT", "/rooms/*/send/*", fault, repeat=25)
    started = trio.current_time()
    h.hs.text_as(alice, room, SLOW_REPLY)
    await h.settle(300)
    assert h.hs.pending_faults() == 0
    _assert_one_complete_reply(h, room, 2, "slow 6/6")
    sends = h.hs.requests_to("PUT", "/rooms/*/send/*")[sends_before:]
    limited = [r for r in sends if r.fault == "response"]
    assert len(limited) == 25
    # Honouring Retry-After: 25 refusals cannot be got through in less than
    # ~25 × 2.5 s / (parallel senders: the inline sender + best-effort edits).
    assert trio.current_time() - started >= 25


async def test_homeserver_429_storm_on_sync(harness, autojump_clock):
    """User sees: a 429 storm on /sync delays the reply; exactly one reply."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject("GET", "/sync", Fault.rate_limited(retry_after_s=4), repeat=15)
    h.hs.text_as(alice, room, "hello through 429s")
    await h.settle(200)
    assert h.hs.pending_faults() == 0
    _assert_one_complete_reply(h, room, 2, "«hello through 429s»")
    # The operator sees each refused attempt, by kind.
    registry = h.app.metrics.registry
    errors = "surfaces_matrix_sync_errors_total"
    assert registry.get_sample_value(errors, {"kind": "ratelimited"}) == 15
    assert registry.get_sample_value(errors, {"kind": "other"}) == 0


async def test_homeserver_slow_responses(harness, autojump_clock):
    """User sees: a homeserver that takes 20 s per request for a while (sync and
    sends) — the reply is late but arrives once and complete."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject(None, "/rooms/*/send/*", Fault.delay(20), repeat=6)
    h.hs.inject("GET", "/sync", Fault.delay(20), repeat=3)
    h.hs.text_as(alice, room, SLOW_REPLY)
    await h.settle(400)
    _assert_one_complete_reply(h, room, 2, "slow 6/6")
    # Delays still queued slow the next reply too (20 s per send): wait for it.
    await answers_next_message(h, alice, room, settle=200)


async def test_homeserver_hangs_past_client_timeout(harness, autojump_clock):
    """User sees: sends that hang forever (no answer at all) are abandoned by the
    client's timeout and retried; the reply arrives once."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject("PUT", "/rooms/*/send/*", Fault.hang(), repeat=3)
    h.hs.text_as(alice, room, "hello through hangs")
    await h.settle(600)
    _assert_one_complete_reply(h, room, 2, "«hello through hangs»")


async def test_lost_responses_to_sends_no_duplicates(harness, autojump_clock):
    """User sees: the homeserver applies every send but the bot never gets the
    response (6 in a row) — still exactly one reply bubble, complete (txn ids
    are reused on retry, the server deduplicates)."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.inject("PUT", "/rooms/*/send/*", Fault.lost_response(), repeat=6)
    h.hs.text_as(alice, room, SLOW_REPLY)
    await h.settle(300)
    assert h.hs.pending_faults() == 0
    _assert_one_complete_reply(h, room, 2, "slow 6/6")
    await answers_next_message(h, alice, room)
    assert len(top_level_bot_messages(h, room)) == 3


async def test_lost_responses_to_sync(harness, autojump_clock):
    """User sees: /sync responses lost in transit (server advanced, client did not
    see it) never double or drop a reply."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "first")
    h.hs.inject("GET", "/sync", Fault.lost_response(), repeat=4)
    await h.settle(60)
    h.hs.text_as(alice, room, "second")
    await h.settle(60)
    texts = h.bot_texts(room)
    assert len(top_level_bot_messages(h, room)) == 3, texts
    assert "«first»" in texts[1]
    assert "«second»" in texts[2]


async def test_token_revoked_mid_run_is_fatal(tmp_path: Path, autojump_clock):
    """User sees: the bot stops answering; the operator sees a clear fatal error —
    ``BotApp.run`` raises FatalError/UnknownTokenError naming M_UNKNOWN_TOKEN (the
    CLI maps it to exit code 3, see test_process_kills.py), it does not retry forever."""
    hs = FakeHomeserver()
    bot = hs.register("bot", displayname="Surfaces")
    workspace = tmp_path / "agents"
    workspace.mkdir()
    environ = {
        "MATRIX_HOMESERVER": hs.base_url,
        "MATRIX_USER_ID": bot.user_id,
        "MATRIX_PASSWORD": bot.password,
        "MATRIX_DEVICE_ID": "SURFACESBOT",
        "AGENT_BASE_URL": "http://agent.test/agent_0/",
        "SURFACES_WORKSPACE_DIR": str(workspace),
        "SURFACES_STATE_DIR": str(tmp_path / "state"),
    }
    config = load_config(None, environ)
    registry = load_registry(
        None, default_base_url=config.agents.default_base_url, workspace_dir=str(workspace)
    )
    app = BotApp(config, registry, transport=httpx.MockTransport(hs.handle), store_inline=True)

    async def revoke_later() -> None:
        await app.wait_ready()
        await trio.sleep(45)  # a few long-polls in
        hs.revoke_token(bot)

    started = trio.current_time()
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as n:
            n.start_soon(revoke_later)
            with trio.fail_after(600):
                await app.run()
    except BaseExceptionGroup as group:
        error = _only(group)
    assert isinstance(error, (FatalError, UnknownTokenError)), repr(error)
    assert "M_UNKNOWN_TOKEN" in str(error)
    # It stopped promptly after the revocation (one long-poll + margin at most).
    assert trio.current_time() - started < 45 + 120


def _only(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        assert len(exc.exceptions) == 1, exc.exceptions
        exc = exc.exceptions[0]
    return exc
