"""Access control (product.md §9), ownership (§3) and agent routing (§6)."""

from __future__ import annotations

import pytest

from agent_client.reference import ReferenceAgent
from surfaces.agents import PROBE_CHAT_ID_BASE
from surfaces.app import command as app_module

CHAT = "org.lambda.surfaces.chat"


@pytest.fixture
def agent_paths(monkeypatch) -> list[str]:
    """The WebSocket paths the reference agent was asked for (which agent, which chat);
    the presence prober's connections (their own chat ids) are left out."""
    paths: list[str] = []
    original = ReferenceAgent.handle

    async def recording(self, request):
        if f"/{PROBE_CHAT_ID_BASE // 10**9}" not in request.path:
            paths.append(request.path)
        await original(self, request)

    monkeypatch.setattr(ReferenceAgent, "handle", recording)
    return paths


# ---- access control ---------------------------------------------------------


async def test_foreign_homeserver_user_is_ignored_by_default(harness, tools, autojump_clock):
    hs = harness.hs
    eve = tools.foreign_user("eve", "evil.org")
    dm = hs.invite_bot(harness.bot_user, inviter=eve)
    await harness.settle()
    assert hs.membership(dm, harness.bot_user) == "invite"  # not joined
    assert await tools.store.get_user(eve.user_id) is None
    assert tools.created_rooms() == 0
    assert tools.spaces() == []
    assert harness.agent.turns_served == 0
    assert await tools.store.pending_inbox() == []


async def test_allowed_user_patterns(harness, tools, autojump_clock):
    hs = harness.hs
    await harness.restart(SURFACES_BOT__ALLOWED_USERS="@a*:test.local, @*:friends.org")
    alice = harness.user("alice", displayname="Alice")
    carol = tools.foreign_user("carol", "friends.org")
    bob = harness.user("bob", displayname="Bob")  # own server, but not in the patterns
    dm_a = hs.invite_bot(harness.bot_user, inviter=alice)
    dm_c = hs.invite_bot(harness.bot_user, inviter=carol)
    dm_b = hs.invite_bot(harness.bot_user, inviter=bob)
    await harness.settle()
    assert hs.membership(dm_a, harness.bot_user) == "join"
    assert hs.membership(dm_c, harness.bot_user) == "join"
    assert hs.membership(dm_b, harness.bot_user) == "invite"
    assert await tools.store.get_user(bob.user_id) is None
    assert len(tools.spaces()) == 2
    assert harness.bot_texts(dm_b) == []


async def test_non_allowed_member_of_a_working_room_gets_nothing(harness, tools, autojump_clock):
    """Alice invites an outsider into her chat: his messages reach nobody, and he
    gets no notice either (he is not allowed to use the bot at all)."""
    hs = harness.hs
    await harness.restart(SURFACES_BOT__ALLOWED_USERS="@alice:test.local")
    alice = harness.user("alice", displayname="Alice")
    mallory = harness.user("mallory")
    _, _, room = await harness.onboard(alice)
    hs.invite_as(alice, room, mallory)
    hs.join_as(mallory, room)
    before = harness.bot_texts(room)
    await tools.say(mallory, room, "do my bidding", settle=10)
    await tools.say(mallory, room, "!new", settle=10)
    assert harness.bot_texts(room) == before
    assert harness.agent.turns_served == 0
    assert len(await tools.store.chats_of(alice.user_id)) == 1


async def test_only_the_owner_drives_a_room(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    bob = harness.user("bob", displayname="Bob")
    _, _, room = await harness.onboard(alice)
    hs.invite_as(alice, room, bob)
    hs.join_as(bob, room)
    await harness.settle()
    before = len(tools.messages(room))
    for body in ("hi agent", "!clear", "more from bob"):
        await tools.say(bob, room, body, settle=5)
    notices = tools.messages(room)[before:]
    assert [n["body"] for n in notices] == [
        "Это чат @alice:test.local: агентом здесь управляет только владелец."
    ]
    assert notices[0]["msgtype"] == "m.notice"
    assert harness.agent.turns_served == 0
    assert harness.agent.history == {}
    chat = await tools.store.get_chat(room)
    assert chat.platform_chat_id == "1"  # bob's !clear did nothing
    # the owner still drives it
    await tools.say(alice, room, "mine", settle=10)
    assert harness.agent.history == {"1": ["mine"]}
    assert "mine" in harness.bot_texts(room)[-1]


# ---- routing ------------------------------------------------------------------


async def test_registry_routing_default_notice_and_later_switch(
    harness, tools, agent_paths, autojump_clock
):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    bob = harness.user("bob", displayname="Bob")
    registry = tools.registry(user_agents={bob.user_id: "agent-1"})
    await harness.restart(MATRIX_AGENT_REGISTRY_PATH=registry)

    _, _, room_a = await harness.onboard(alice)
    _, _, room_b = await harness.onboard(bob)
    assert hs.state_content(room_a, CHAT)["agent_id"] == "agent-0"
    assert hs.state_content(room_b, CHAT)["agent_id"] == "agent-1"

    await tools.say(alice, room_a, "one", settle=10)
    await tools.say(alice, room_a, "two", settle=10)
    await tools.say(bob, room_b, "hey", settle=10)
    pid_a = (await tools.store.get_chat(room_a)).platform_chat_id
    pid_b = (await tools.store.get_chat(room_b)).platform_chat_id
    assert agent_paths == [
        f"/agent_0/v1/agent_ws/{pid_a}/",
        f"/agent_0/v1/agent_ws/{pid_a}/",
        f"/agent_1/v1/agent_ws/{pid_b}/",
    ]
    default = "Для тебя пока не настроен агент — отвечает агент по умолчанию (Agent 0)."
    assert tools.notices(room_a).count(default) == 1  # once per room, not per turn
    assert default not in tools.notices(room_b)

    # a second room of alice gets its own one-time notice
    await tools.say(alice, room_a, "!new")
    room_a2 = (await tools.store.chats_of(alice.user_id))[1].room_id
    hs.join_as(alice, room_a2)
    await tools.say(alice, room_a2, "hello", settle=10)
    assert tools.notices(room_a2).count(default) == 1

    # alice gets configured: next use switches her room, keeping the platform chat id
    registry = tools.registry(user_agents={bob.user_id: "agent-1", alice.user_id: "agent-1"})
    await harness.restart(MATRIX_AGENT_REGISTRY_PATH=registry)
    agent_paths.clear()
    await tools.say(alice, room_a, "three", settle=10)
    assert agent_paths == [f"/agent_1/v1/agent_ws/{pid_a}/"]
    chat = await tools.store.get_chat(room_a)
    assert (chat.agent_id, chat.platform_chat_id) == ("agent-1", pid_a)
    assert hs.state_content(room_a, CHAT)["agent_id"] == "agent-1"
    assert hs.state_content(room_a, CHAT)["platform_chat_id"] == pid_a
    assert harness.agent.history[pid_a] == ["one", "two", "three"]
    assert "three" in harness.bot_texts(room_a)[-1]
    assert tools.notices(room_a).count(default) == 1
    await tools.say(alice, room_a, "!status")
    assert tools.last(room_a)["body"].startswith("Агент: Agent 1 (в сети, ")


def _env(monkeypatch, tmp_path, registry: str) -> None:
    for key in ("SURFACES_CONFIG", "MATRIX_ACCESS_TOKEN", "SURFACES_BOT__LOCALE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MATRIX_HOMESERVER", "https://unreachable.invalid")
    monkeypatch.setenv("MATRIX_USER_ID", "@bot:test.local")
    monkeypatch.setenv("MATRIX_PASSWORD", "pw")
    monkeypatch.setenv("AGENT_BASE_URL", "http://agent.test/agent_0/")
    monkeypatch.setenv("SURFACES_STATE_DIR", str(tmp_path / "never-created"))
    monkeypatch.setenv("MATRIX_AGENT_REGISTRY_PATH", registry)


@pytest.mark.parametrize(
    ("content", "problems"),
    [
        ("agents: []\n", ["agents", "no agents"]),
        (
            "agents:\n  - {id: a, label: A}\n  - {id: a, label: B}\n",
            ["agents[1] 'a'", "duplicate id"],
        ),
        (
            "user_agents:\n  '@alice:test.local': ghost\nagents:\n  - {id: a, label: A}\n",
            ["user_agents['@alice:test.local']", "unknown agent id 'ghost'"],
        ),
        (
            "agents:\n  - {id: a, label: A, base_url: 'ftp://x'}\n",
            ["agents[0] 'a'", "base_url"],
        ),
    ],
)
def test_invalid_registry_refuses_to_start(monkeypatch, tmp_path, capsys, content, problems):
    path = tmp_path / "agents.yaml"
    path.write_text(content, encoding="utf-8")
    _env(monkeypatch, tmp_path, str(path))

    def no_network(*args, **kwargs):  # pragma: no cover - reached only on a bug
        raise AssertionError("the bot started despite an invalid registry")

    monkeypatch.setattr(app_module.trio, "run", no_network)
    with pytest.raises(SystemExit) as exc:
        app_module.main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for problem in problems:
        assert problem in err
    assert not (tmp_path / "never-created").exists()


def test_missing_registry_file_refuses_to_start(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    _env(monkeypatch, tmp_path, str(missing))
    monkeypatch.setattr(app_module.trio, "run", lambda *a, **k: pytest.fail("started"))
    with pytest.raises(SystemExit) as exc:
        app_module.main([])
    assert exc.value.code == 2
    assert str(missing) in capsys.readouterr().err
