"""Agent presence through the whole bot: ``!status``, the offline wait, the bot's own
Matrix presence (fake homeserver, reference agent, virtual time)."""

from __future__ import annotations

import structlog

from matrix_client.testing import Fault

PRESENCE_PUT = "/presence/*/status"


def bot_presence(harness) -> tuple[str, str | None] | None:
    """What the fake homeserver holds as the bot's presence."""
    entry = harness.hs._presence.get(harness.bot_user.user_id)
    return None if entry is None else (entry[0], entry[1])


async def agent_down(harness, seconds: float = 40) -> None:
    harness.connect_error = OSError("connection refused")
    await harness.settle(seconds)  # a probe (every 30 ± 5 s) sees it


async def test_status_shows_presence_and_last_seen(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "!status")
    assert (
        tools.last(room)["body"].splitlines()[0] == "Агент: Agent (в сети, был на связи только что)"
    )
    await agent_down(harness, 200)
    await tools.say(alice, room, "!status")
    first = tools.last(room)["body"].splitlines()[0]
    assert first.startswith("Агент: Agent (не в сети, был на связи ")
    assert first.endswith(" минуты назад)")  # 3 or 4 minutes, by the probe's jitter


async def test_status_in_english(harness, tools, autojump_clock):
    await harness.restart(SURFACES_BOT__LOCALE="en")
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "!status")
    assert tools.last(room)["body"].splitlines()[0] == "Agent: Agent (online, last seen just now)"
    await agent_down(harness)
    await tools.say(alice, room, "!status")
    assert tools.last(room)["body"].splitlines()[0] == "Agent: Agent (offline, last seen just now)"


async def test_offline_agent_message_waits_and_runs_when_it_is_back(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    before = len(tools.messages(room))
    await tools.say(alice, room, "are you there?", settle=1)
    said = [m["body"] for m in tools.messages(room)[before:]]
    assert said == [
        "⏳ Агент сейчас не в сети. Передам сообщение, как только он вернётся (жду до 10 минут)."
    ]
    await harness.settle(120)  # waiting, not failing after the connect timeout
    assert len(tools.messages(room)) == before + 1
    assert harness.agent.history == {}
    harness.connect_error = None
    await harness.settle(40)  # the next probe sees it; the turn runs
    assert harness.agent.history == {"1": ["are you there?"]}
    assert "are you there?" in tools.last(room)["body"]
    assert len(tools.notices(room)) == len([m for m in said]) + sum(
        1 for m in tools.messages(room)[:before] if m.get("msgtype") == "m.notice"
    )


async def test_offline_wait_expires_into_the_usual_failure(harness, tools, autojump_clock):
    await harness.restart(SURFACES_PRESENCE__OFFLINE_WAIT_S="120")
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    await tools.say(alice, room, "hello?", settle=1)
    assert tools.last(room)["body"].endswith("(жду до 2 минут).")
    await harness.settle(100)
    assert "недоступен" not in tools.last(room)["body"]
    await harness.settle(60)  # the wait ran out, the turn ran and could not connect
    assert tools.last(room)["body"] == "Агент недоступен. Попробуй позже."


async def test_stop_ends_the_wait(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    await tools.say(alice, room, "never mind this", settle=1)
    await tools.say(alice, room, "!stop", settle=2)
    assert tools.last(room)["body"] == "Хорошо, больше не жду: это сообщение агенту не уйдёт."
    harness.connect_error = None
    await harness.settle(60)
    assert harness.agent.history == {}
    await tools.say(alice, room, "now", settle=5)
    assert harness.agent.history == {"1": ["now"]}


async def test_no_wait_when_disabled(harness, tools, autojump_clock):
    await harness.restart(SURFACES_PRESENCE__OFFLINE_WAIT_S="0")
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    await tools.say(alice, room, "hello?", settle=40)
    assert tools.last(room)["body"] == "Агент недоступен. Попробуй позже."


async def test_shutdown_during_the_wait_keeps_the_message(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    await tools.say(alice, room, "keep me", settle=1)
    harness.connect_error = None  # back while the bot is down
    await harness.restart()
    await harness.settle(10)
    assert harness.agent.history == {"1": ["keep me"]}
    waits = [b for b in tools.notices(room) if b.startswith("⏳")]
    assert len(waits) == 1  # the re-run did not repeat the notice


async def test_bot_presence_follows_the_agent(harness, tools, autojump_clock):
    hs = harness.hs
    await harness.settle(10)
    assert bot_presence(harness) == ("online", "")
    puts = len(hs.requests_to("PUT", PRESENCE_PUT))
    await harness.settle(300)
    assert len(hs.requests_to("PUT", PRESENCE_PUT)) == puts  # only on changes
    await agent_down(harness)
    assert bot_presence(harness) == ("unavailable", "default offline")
    harness.connect_error = None
    await harness.settle(40)
    assert bot_presence(harness) == ("online", "")
    assert len(hs.requests_to("PUT", PRESENCE_PUT)) == puts + 2
    await tools.stop()
    assert bot_presence(harness) == ("offline", None)


async def test_presence_ignored_by_the_homeserver_is_one_log_line(harness, autojump_clock):
    hs = harness.hs
    hs.presence_enabled = False  # as Synapse with presence.enabled: false
    with structlog.testing.capture_logs() as logs:
        await harness.restart()
        puts = len(hs.requests_to("PUT", PRESENCE_PUT))
        await harness.settle(10)
        assert len(hs.requests_to("PUT", PRESENCE_PUT)) == puts + 1  # set, read back
        await agent_down(harness)
        harness.connect_error = None
        await harness.settle(40)
    disabled = [e for e in logs if e["event"] == "bot_presence_disabled"]
    assert len(disabled) == 1
    assert len(hs.requests_to("PUT", PRESENCE_PUT)) == puts + 1  # nothing after that


async def test_presence_refused_by_the_homeserver_is_one_log_line(harness, autojump_clock):
    hs = harness.hs
    hs.inject(
        "PUT", PRESENCE_PUT, Fault.error(403, "M_FORBIDDEN", "presence is disabled"), repeat=50
    )
    with structlog.testing.capture_logs() as logs:
        await harness.restart()
        await agent_down(harness)
        harness.connect_error = None
        await harness.settle(40)
    disabled = [e for e in logs if e["event"] == "bot_presence_disabled"]
    assert len(disabled) == 1
    refused = [r for r in hs.requests_to("PUT", PRESENCE_PUT) if r.fault]
    assert len(refused) == 1


async def test_agent_back_before_the_next_probe_answers_at_once(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    harness.connect_error = None  # back, but no probe has seen it yet
    before = len(tools.messages(room))
    await tools.say(alice, room, "quick", settle=3)
    said = [m["body"] for m in tools.messages(room)[before:]]
    assert len(said) == 1  # the re-check saw it: no notice, the answer
    assert "quick" in said[0]


async def test_metrics_show_the_agents(harness, autojump_clock):
    await harness.settle(10)
    body = harness.app.metrics.render().decode()
    assert 'surfaces_agent_up{agent="default"} 1.0' in body
    assert 'surfaces_agent_state{agent="default",state="online"} 1.0' in body
    assert 'surfaces_agent_state{agent="default",state="offline"} 0.0' in body
    await agent_down(harness)
    body = harness.app.metrics.render().decode()
    assert 'surfaces_agent_up{agent="default"} 0.0' in body
    assert 'surfaces_agent_state{agent="default",state="online"} 0.0' in body
    assert 'surfaces_agent_state{agent="default",state="offline"} 1.0' in body


async def test_every_registry_agent_is_probed_and_named_in_the_status_msg(
    harness, tools, autojump_clock
):
    async def agent_1_down(request):
        if "/agent_1/" in request.path:
            await request.reject(503)
            return
        await harness.agent.handle(request)

    harness.agent_handler = agent_1_down
    await harness.restart(MATRIX_AGENT_REGISTRY_PATH=tools.registry())
    await harness.settle(10)
    assert bot_presence(harness) == ("unavailable", "agent-1 offline")
    body = harness.app.metrics.render().decode()
    assert 'surfaces_agent_up{agent="agent-0"} 1.0' in body
    assert 'surfaces_agent_up{agent="agent-1"} 0.0' in body
    harness.agent_handler = None
    await harness.settle(40)
    assert bot_presence(harness) == ("online", "")


async def test_syncs_carry_the_presence_and_sends_re_assert_unavailable(
    harness, tools, autojump_clock
):
    """Synapse sets presence from every /sync and turns "unavailable" back into
    "online" when the bot sends: the syncs say what the bot set, and a send while
    unavailable is followed by one presence request (per burst)."""
    hs = harness.hs
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await agent_down(harness)
    assert bot_presence(harness) == ("unavailable", "default offline")
    await harness.settle(31)  # past a long-poll: the next /sync was made
    assert hs.requests_to("GET", "/sync")[-1].query.get("set_presence") == "unavailable"
    puts = len(hs.requests_to("PUT", PRESENCE_PUT))
    for _ in range(3):
        await tools.say(alice, room, "!status", settle=0.2)
    await harness.settle(5)
    assert len(hs.requests_to("PUT", PRESENCE_PUT)) == puts + 1
    last = hs.requests_to("PUT", PRESENCE_PUT)[-1].body
    assert last == {"presence": "unavailable", "status_msg": "default offline"}
    harness.connect_error = None
    await harness.settle(40)  # a probe sees it back: "online"
    assert bot_presence(harness) == ("online", "")
    await harness.settle(31)  # and the next /sync (within a long-poll) says so
    assert hs.requests_to("GET", "/sync")[-1].query.get("set_presence") == "online"


async def test_failed_turns_make_the_agent_away_and_a_good_one_online(
    harness, tools, autojump_clock
):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "/error QUOTA", settle=2)
    await tools.say(alice, room, "/error QUOTA", settle=2)
    await tools.say(alice, room, "!status", settle=2)
    assert tools.last(room)["body"].splitlines()[0].startswith("Агент: Agent (отошёл, ")
    assert bot_presence(harness) == ("unavailable", "default away")
    await tools.say(alice, room, "fine now", settle=5)
    await tools.say(alice, room, "!status", settle=2)
    assert tools.last(room)["body"].splitlines()[0].startswith("Агент: Agent (в сети, ")
    assert bot_presence(harness) == ("online", "")


async def test_presence_request_failing_for_a_while_is_retried_with_backoff(
    harness, autojump_clock
):
    hs = harness.hs
    hs.inject("PUT", PRESENCE_PUT, Fault.http_status(502), repeat=8)  # past the client's retries
    with structlog.testing.capture_logs() as logs:
        await harness.restart()
        await harness.settle(120)
    assert bot_presence(harness) == ("online", "")
    assert hs.pending_faults() == 0
    failed = [e for e in logs if e["event"] == "bot_presence_failed"]
    assert 1 <= len(failed) <= 3
    assert not [e for e in logs if e["event"] == "bot_presence_disabled"]
