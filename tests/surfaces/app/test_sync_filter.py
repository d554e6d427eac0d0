"""The bot's sync filter hides its own events (spec v1.11+ homeservers): its
replies do not wake its own long-poll, and history from before it joined a room
is still ignored (by ``unsigned.membership``, its own join being hidden too)."""

from __future__ import annotations

from structlog.testing import capture_logs

from matrix_client.testing import Fault


def uploaded_timeline_filter(hs) -> dict:
    return hs.requests_to("POST", "/filter")[-1].body["room"]["timeline"]


async def test_the_bots_own_reply_does_not_come_back_in_its_sync(harness, tools, autojump_clock):
    hs = harness.hs
    bot_id = harness.bot_user.user_id
    assert uploaded_timeline_filter(hs)["not_senders"] == [bot_id]
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    syncs_before = len(hs.requests_to("GET", "/sync"))
    token_before = hs.requests_to("GET", "/sync")[-1].query["since"]
    await tools.say(alice, room, "hello there", settle=10)
    assert "hello there" in harness.bot_texts(room)[-1]
    # Alice's message ended the pending long-poll; the bot's reply (message and
    # edits) did not end the next one, which is still waiting.
    assert len(hs.requests_to("GET", "/sync")) == syncs_before + 1
    # What the bot's filter lets through since then: alice's message only.
    filter_id = hs.requests_to("GET", "/sync")[-1].query["filter"]
    async with hs.user_client(harness.bot_user) as client:
        response = await client.sync(since=token_before, timeout_ms=0, filter_id=filter_id)
    senders = {e.sender for e in response.rooms.join[room].timeline.events}
    assert senders == {alice.user_id}
    assert any(e["sender"] == bot_id for e in hs.timeline(room)[-2:])


async def test_a_dm_message_from_before_the_bot_joined_is_not_answered(
    harness, tools, autojump_clock
):
    """The bot's join is hidden by its filter; ``unsigned.membership`` marks the
    message as sent while the bot was only invited."""
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm = hs.invite_bot(harness.bot_user, inviter=alice)
    early = hs.text_as(alice, dm, "are you there yet?")
    await harness.settle()
    assert hs.membership(dm, harness.bot_user) == "join"
    [ready] = harness.bot_texts(dm)  # the workspace reply, nothing for the early message
    assert "Готово" in ready
    assert await tools.store.inbox_status(early) is None
    await tools.say(alice, dm, "and now?")
    assert len(harness.bot_texts(dm)) == 2


async def test_older_homeserver_no_filter_and_history_still_ignored(harness, tools, autojump_clock):
    """Without v1.11 (no ``unsigned.membership``) the bot's own events stay in its
    sync, so its join still marks where history ends."""
    hs = harness.hs
    hs.versions = ["v1.1", "v1.10"]
    with capture_logs() as logs:
        await harness.restart()
    assert "not_senders" not in uploaded_timeline_filter(hs)
    assert [e["event"] for e in logs].count("own_events_not_filtered") == 1
    alice = harness.user("alice", displayname="Alice")
    dm = hs.invite_bot(harness.bot_user, inviter=alice)
    early = hs.text_as(alice, dm, "are you there yet?")
    await harness.settle()
    assert len(harness.bot_texts(dm)) == 1
    assert await tools.store.inbox_status(early) is None


async def test_versions_failure_means_no_filter_and_one_warning(harness, tools, autojump_clock):
    """The homeserver *answers* ``/versions`` with an error: taken as an older server."""
    hs = harness.hs
    hs.inject("GET", "/_matrix/client/versions", Fault.error(404, "M_UNRECOGNIZED"))
    with capture_logs() as logs:
        await harness.restart()
    assert "not_senders" not in uploaded_timeline_filter(hs)
    assert [e["event"] for e in logs].count("matrix_versions_failed") == 1
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "still works")
    assert "still works" in harness.bot_texts(room)[-1]


async def test_versions_not_answered_at_start_is_waited_for(harness, tools, autojump_clock):
    """A proxy's 502 page is not the homeserver's answer: start-up waits for the real
    one instead of giving up own-event filtering for the life of the process."""
    hs = harness.hs
    hs.inject("GET", "/_matrix/client/versions", Fault.http_status(502), repeat=10)
    with capture_logs() as logs:
        await harness.restart()
    assert uploaded_timeline_filter(hs)["not_senders"] == [harness.bot_user.user_id]
    waits = [e for e in logs if e["event"] == "homeserver_unavailable_at_start"]
    assert waits
    assert {e["step"] for e in waits} == {"filter"}
    assert "matrix_versions_failed" not in [e["event"] for e in logs]
