"""End-to-end through the bot on the fake homeserver: onboarding and a turn."""

from __future__ import annotations


async def test_invite_provisions_workspace_and_a_turn_gets_a_reply(harness, autojump_clock):
    alice = harness.user("alice", displayname="Alice")
    _dm, space, room = await harness.onboard(alice)
    hs = harness.hs
    assert hs.state_content(space, "m.room.create")["type"] == "m.space"
    assert hs.state_content(space, "m.space.child", room)["via"]
    assert hs.state_content(room, "m.space.parent", space)["via"]
    assert hs.state_content(space, "m.room.name")["name"] == "Lambda — Alice"
    assert hs.state_content(room, "m.room.name")["name"] == "Чат 1"
    welcome = harness.bot_texts(room)
    assert welcome
    assert welcome[0].startswith("Привет, Alice!")

    hs.text_as(alice, room, "hello there")
    await harness.settle(10)
    texts = harness.bot_texts(room)
    assert len(texts) == 2
    assert "hello there" in texts[1]


async def test_maintenance_checkpoints_the_wal_and_prunes(harness, autojump_clock, monkeypatch):
    """Commits on the event loop never fsync, so the bot checkpoints the WAL itself
    (every 2 s) and prunes finished rows every few hours (here: 10 s)."""
    import trio

    from surfaces.app import maintenance as app_module

    monkeypatch.setattr(app_module, "PRUNE_EVERY_S", 10.0)
    store = harness.app.store
    calls: list[str] = []
    real_checkpoint, real_prune = store.checkpoint, store.prune_inbox

    async def checkpoint():
        calls.append("checkpoint")
        return await real_checkpoint()

    async def prune(keep_seconds):
        calls.append("prune")
        return await real_prune(keep_seconds)

    monkeypatch.setattr(store, "checkpoint", checkpoint)
    monkeypatch.setattr(store, "prune_inbox", prune)
    await trio.sleep(5)
    assert calls == ["checkpoint", "checkpoint"]
    await trio.sleep(10)
    assert calls.count("prune") == 1
    assert calls.count("checkpoint") >= 6
