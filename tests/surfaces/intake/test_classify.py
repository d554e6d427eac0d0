"""``classify``: what in a sync batch the bot acts on (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import attrs

from matrix_client import (
    InviteItem,
    JoinedRoom,
    RoomEvent,
    Rooms,
    SyncBatch,
    SyncResponse,
    Timeline,
    TimelineItem,
)
from surfaces.intake import MAX_BODY_CHARS, IntakePolicy, classify, gapped_rooms

BOT = "@bot:test.local"
ALICE = "@alice:test.local"
EVE = "@eve:evil.org"
ROOM = "!r:test.local"

_ids = iter(range(1, 1_000_000))


def ev(
    content: Any = None,
    *,
    sender: str = ALICE,
    type: str = "m.room.message",
    state_key: str | None = None,
    membership: str | None = None,
) -> RoomEvent:
    """``membership``: the bot's ``unsigned.membership`` at the event (MSC4115)."""
    unsigned = {} if membership is None else {"membership": membership}
    return RoomEvent(f"$e{next(_ids)}", type, sender, 0, content or {}, state_key, unsigned)


def text(body: str, **kw: Any) -> RoomEvent:
    return ev({"msgtype": "m.text", "body": body}, **kw)


def batch(*events: RoomEvent, since: str | None = "s1", invites=(), room: str = ROOM):
    return SyncBatch(
        None, since, "s2", events=[TimelineItem(room, e) for e in events], invites=list(invites)
    )


def policy(confirming: bool = False) -> IntakePolicy:
    return IntakePolicy(
        own_user_id=BOT,
        is_allowed=lambda u: u.endswith(":test.local"),
        awaiting_confirmation=lambda room: confirming,
    )


def kinds(items) -> list[tuple[str, str, str]]:
    return [(i.kind, str(i.lane), i.payload.get("body", "")) for i in items]


def test_plain_text_and_commands():
    items = classify(
        batch(text("hello"), text("!new X"), ev({"msgtype": "m.emote", "body": "waves"})), policy()
    )
    assert kinds(items) == [
        ("text", f"room:{ROOM}", "hello"),
        ("command", f"room:{ROOM}", "!new X"),
        ("text", f"room:{ROOM}", "/me waves"),  # an emote is text, in its /me form
    ]
    assert all(i.sender == ALICE and i.room_id == ROOM for i in items)


def test_ignored_events():
    items = classify(
        batch(
            text("own message", sender=BOT),
            ev({"msgtype": "m.notice", "body": "a bot's notice"}),
            ev(  # an edit without m.new_content: nothing to re-run with
                {
                    "msgtype": "m.text",
                    "body": "* edit",
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
                }
            ),
            text("from outside", sender=EVE),
            ev({"msgtype": "m.text", "body": "   "}),
            ev({"name": "x"}, type="m.room.name", state_key=""),
            ev({"key": "👍"}, type="m.reaction"),  # no relation
            ev(  # a reaction that is not a control
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "😀"}},
                type="m.reaction",
            ),
        ),
        policy(),
    )
    assert items == []


def test_reply_is_a_prompt_with_what_it_quotes():
    reply = ev(
        {
            "msgtype": "m.text",
            "body": "yes please",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}},
        }
    )
    [item] = classify(batch(reply), policy())
    assert kinds([item]) == [("text", f"room:{ROOM}", "yes please")]
    assert item.payload["reply_to"] == "$q"


def test_history_before_the_bot_joined_is_ignored():
    join = ev({"membership": "join"}, sender=BOT, type="m.room.member", state_key=BOT)
    items = classify(batch(text("old"), text("older !new"), join, text("new")), policy())
    assert kinds(items) == [("text", f"room:{ROOM}", "new")]
    # another room in the same batch is not affected
    other = SyncBatch(
        None,
        "s1",
        "s2",
        events=[
            TimelineItem("!other:test.local", text("elsewhere")),
            TimelineItem(ROOM, text("old")),
            TimelineItem(ROOM, join),
        ],
    )
    assert [i.payload["body"] for i in classify(other, policy())] == ["elsewhere"]


def test_unsigned_membership_marks_history_from_before_the_join():
    """With the sync filter hiding our own events, our join is not in the timeline:
    the bot's membership at each event (spec v1.11) tells history from prompts."""
    items = classify(
        batch(
            text("before the invite", membership="leave"),
            text("while invited", membership="invite"),
            text("after the join", membership="join"),
            text("from outside, after the join", sender=EVE, membership="join"),
        ),
        policy(),
    )
    assert kinds(items) == [("text", f"room:{ROOM}", "after the join")]


def test_unsigned_membership_wins_over_the_join_marker():
    """A profile change of the bot is an ``m.room.member`` join too: with the
    membership given, what precedes it in the batch still counts."""
    profile = ev(
        {"membership": "join", "displayname": "New name"},
        sender=BOT,
        type="m.room.member",
        state_key=BOT,
        membership="join",
    )
    items = classify(
        batch(text("before the rename", membership="join"), profile, text("after")), policy()
    )
    assert [i.payload["body"] for i in items] == ["before the rename", "after"]


def test_without_unsigned_membership_the_own_join_marker_still_applies():
    """Servers older than v1.11: the event without ``unsigned.membership`` falls
    back to the position of our join; one that has it is judged by it."""
    join = ev({"membership": "join"}, sender=BOT, type="m.room.member", state_key=BOT)
    items = classify(
        batch(
            text("old, no membership"),
            text("old, but the server says joined", membership="join"),
            join,
            text("new, no membership"),
            text("new, but the server says invited", membership="invite"),
        ),
        policy(),
    )
    assert [i.payload["body"] for i in items] == [
        "old, but the server says joined",
        "new, no membership",
    ]


def limited_batch(first: RoomEvent | None, *, since: str | None = "s1") -> SyncBatch:
    events = [] if first is None else [first]
    room = JoinedRoom(timeline=Timeline(events=events, limited=True, prev_batch="s0"))
    response = SyncResponse(next_batch="s2", rooms=Rooms(join={ROOM: room}))
    return SyncBatch(
        response,
        since,
        "s2",
        events=[TimelineItem(ROOM, e) for e in events],
        limited_rooms=[ROOM],
    )


def test_a_gap_before_our_join_is_not_a_lost_message():
    """A room with a long history is ``limited`` when the bot joins it: what was
    left out is older than the first event shown, so history as well."""
    assert gapped_rooms(limited_batch(text("history", membership="invite"))) == set()
    assert gapped_rooms(limited_batch(text("after the join", membership="join"))) == {ROOM}
    assert gapped_rooms(limited_batch(text("server did not say"))) == {ROOM}
    assert gapped_rooms(limited_batch(None)) == {ROOM}
    assert gapped_rooms(limited_batch(text("x", membership="join"), since=None)) == set()


def test_tokenless_first_sync_is_all_history_but_invites_count():
    invite = InviteItem("!dm:test.local", ALICE, True, False)
    items = classify(batch(text("before"), since=None, invites=[invite]), policy())
    assert [(i.kind, str(i.lane), i.event_id) for i in items] == [
        ("invite", f"invite:{ALICE}", "invite:!dm:test.local:initial")
    ]


def test_invites():
    invites = [
        InviteItem("!a:test.local", ALICE, True, True),
        InviteItem("!b:test.local", EVE, True, False),  # not allowed
        InviteItem("!c:test.local", None, True, False),  # no inviter
        InviteItem("!d:test.local", BOT, False, False),  # ourselves
    ]
    items = classify(batch(invites=invites), policy())
    assert len(items) == 1
    [item] = items
    assert (item.kind, item.room_id, item.sender) == ("invite", "!a:test.local", ALICE)
    assert item.payload == {"is_direct": True, "encrypted": True}
    # keyed by the requested token: a replayed sync gives the same key
    replay = classify(SyncBatch(None, "s1", "s99", invites=invites[:1]), policy())
    assert replay[0].event_id == item.event_id
    later = classify(SyncBatch(None, "s99", "s100", invites=invites[:1]), policy())
    assert later[0].event_id != item.event_id


def test_control_lane_for_stop_status_and_pending_confirmation():
    events = [text("!stop"), text("!STATUS"), text("!yes"), text("!no"), text("!help")]
    items = classify(batch(*events), policy())
    assert [str(i.lane) for i in items] == [
        f"ctl:{ROOM}",
        f"ctl:{ROOM}",
        f"room:{ROOM}",
        f"room:{ROOM}",
        f"room:{ROOM}",
    ]
    items = classify(batch(*events), policy(confirming=True))
    assert [str(i.lane) for i in items][:4] == [f"ctl:{ROOM}"] * 4
    assert all(i.kind == "command" for i in items)


def test_huge_body_is_truncated_with_a_flag():
    body = "x" * (MAX_BODY_CHARS + 10)
    [item] = classify(batch(text(body)), policy())
    assert item.payload["truncated"] is True
    assert len(item.payload["body"]) == MAX_BODY_CHARS
    [small] = classify(batch(text("short")), policy())
    assert "truncated" not in small.payload


def test_files_and_encrypted_events():
    image = ev(
        {
            "msgtype": "m.image",
            "body": "cat.png",
            "url": "mxc://s/1",
            "info": {"mimetype": "image/png", "size": 3},
        }
    )
    named = ev({"msgtype": "m.file", "body": "caption", "filename": "r.pdf", "url": "mxc://s/2"})
    enc = ev({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "..."}, type="m.room.encrypted")
    enc_eve = ev({"ciphertext": "..."}, type="m.room.encrypted", sender=EVE)
    items = classify(batch(image, named, enc, enc_eve), policy())
    assert [i.kind for i in items] == ["file", "file", "encrypted"]
    assert items[0].payload == {
        "msgtype": "m.image",
        "url": "mxc://s/1",
        "name": "cat.png",
        "info": {"mimetype": "image/png", "size": 3},
    }
    assert items[1].payload["name"] == "r.pdf"
    assert "file" not in items[0].payload


def test_an_encrypted_attachment_carries_its_file_object():
    file = {"v": "v2", "url": "mxc://s/3", "key": {"k": "x"}, "iv": "y", "hashes": {}}
    items = classify(batch(ev({"msgtype": "m.file", "body": "n.txt", "file": file})), policy())
    assert items[0].payload == {
        "msgtype": "m.file",
        "url": None,
        "name": "n.txt",
        "info": {},
        "file": file,
    }


def test_malformed_content_never_raises():
    events = [
        ev({"msgtype": ["m.text"], "body": "list msgtype"}),
        ev({"msgtype": {"x": 1}, "body": "dict msgtype"}),
        ev({"msgtype": "m.text", "body": ["not", "a", "string"]}),
        ev({"msgtype": "m.text", "body": None}),
        ev({"msgtype": "m.text", "body": "ok", "m.relates_to": "garbage"}),
        ev({"msgtype": "m.file", "url": 5, "info": "x", "body": 7}),
        ev({"msgtype": "m.text", "body": "!"}),
        ev({}),
    ]
    items = classify(batch(*events), policy())
    assert kinds(items) == [
        ("text", f"room:{ROOM}", "ok"),
        ("file", f"room:{ROOM}", ""),
        ("text", f"room:{ROOM}", "!"),
    ]
    assert items[1].payload == {"msgtype": "m.file", "url": None, "name": None, "info": {}}


async def test_malformed_events_do_not_stop_the_bot(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    hs.send_as(alice, room, {"msgtype": ["m.text"], "body": "bad"})
    hs.inject_raw_event(
        room,
        {
            "type": "m.room.message",
            "sender": alice.user_id,
            "event_id": "$raw1",
            "content": "not an object",
        },
    )
    hs.inject_raw_event(
        room,
        {
            "type": "m.room.message",
            "sender": alice.user_id,
            "event_id": "$raw2",
            "content": {"msgtype": 5},
        },
    )
    await tools.say(alice, room, "still alive?", settle=10)
    assert "still alive?" in harness.bot_texts(room)[-1]
    assert harness.agent.turns_served == 1


# ---- what Element sends ------------------------------------------------------------


def _reply(body: str, formatted: str | None = None, **relates) -> RoomEvent:
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}, **relates},
    }
    if formatted is not None:
        content |= {"format": "org.matrix.custom.html", "formatted_body": formatted}
    return ev(content)


def test_reply_fallbacks_are_stripped_so_commands_in_replies_parse():
    fallback = "> <@bot:test.local> Turn 1. You said: «x».\n> second line\n\n!stop"
    html = "<mx-reply><blockquote>quoted <b>html</b></blockquote></mx-reply>!stop"
    items = classify(batch(_reply(fallback, html)), policy())
    assert kinds(items) == [("command", f"ctl:{ROOM}", "!stop")]
    [item] = classify(batch(_reply("> <@a:x> q\n\nmy own words")), policy())
    assert item.payload["body"] == "my own words"
    # Without m.in_reply_to a leading quote is the user's own text.
    [quote] = classify(batch(text("> a quote\n\nmine")), policy())
    assert quote.payload["body"] == "> a quote\n\nmine"


def test_html_only_messages_become_text_with_pills_as_names():
    content = {
        "msgtype": "m.text",
        "body": "",
        "format": "org.matrix.custom.html",
        "formatted_body": (
            '<p>Hi <a href="https://matrix.to/#/@bob:test.local">Bob</a> and '
            '<a href="https://matrix.to/#/%40carol%3Atest.local"></a>:</p>'
            "<ul><li>one</li><li>two &amp; three</li></ul>line<br>break"
        ),
    }
    [item] = classify(batch(ev(content)), policy())
    assert (
        item.payload["body"] == "Hi Bob and @carol:test.local:\n- one\n- two & three\nline\nbreak"
    )


def test_unknown_msgtypes_with_a_body_are_text_others_get_a_notice():
    items = classify(
        batch(
            ev({"msgtype": "org.example.custom", "body": "hello"}),
            ev({"msgtype": "org.example.custom"}),
            ev({"msgtype": "m.location", "body": "geo", "geo_uri": "geo:1,2"}),
            ev({"body": "s", "url": "mxc://x/y", "info": {}}, type="m.sticker"),
            ev({"m.poll": {}}, type="org.matrix.msc3381.poll.start"),
            ev({"m.poll": {}}, type="m.poll.start"),
        ),
        policy(),
    )
    assert [(i.kind, i.payload.get("body") or i.payload.get("what")) for i in items] == [
        ("text", "hello"),
        ("unsupported", "other"),
        ("unsupported", "location"),
        ("unsupported", "sticker"),
        ("unsupported", "poll"),
        ("unsupported", "poll"),
    ]
    assert all(str(i.lane) == f"ctl:{ROOM}" for i in items[1:])  # told at once


def test_a_captioned_file_carries_its_caption():
    captioned = ev(
        {
            "msgtype": "m.image",
            "body": "what is on this picture?",
            "filename": "cat.png",
            "url": "mxc://x/cat",
            "info": {"size": 3},
        }
    )
    plain = ev({"msgtype": "m.file", "body": "report.pdf", "url": "mxc://x/r"})
    same = ev({"msgtype": "m.file", "body": "r.pdf", "filename": "r.pdf", "url": "mxc://x/r"})
    items = classify(batch(captioned, plain, same), policy())
    assert [(i.kind, i.payload["name"], i.payload.get("caption")) for i in items] == [
        ("file", "cat.png", "what is on this picture?"),
        ("file", "report.pdf", None),
        ("file", "r.pdf", None),
    ]


def test_edits_carry_the_new_content_never_the_fallback():
    edit = ev(
        {
            "msgtype": "m.text",
            "body": "* fixed text",
            "m.new_content": {"msgtype": "m.text", "body": "fixed text"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
        }
    )
    [item] = classify(batch(edit), policy())
    assert (item.kind, str(item.lane)) == ("edit", f"ctl:{ROOM}")
    assert item.payload == {"target": "$orig", "body": "fixed text"}


def test_control_reactions_with_and_without_the_variation_selector():
    def react(key: str) -> RoomEvent:
        relates = {"rel_type": "m.annotation", "event_id": "$reply", "key": key}
        return ev({"m.relates_to": relates}, type="m.reaction")

    items = classify(
        batch(react("🛑"), react("👍️"), react("👍"), react("👎\ufe0f"), react("🔁"), react("👍🏽")),
        policy(),
    )
    assert [(i.payload["control"], str(i.lane)) for i in items] == [
        ("stop", f"ctl:{ROOM}"),
        ("yes", f"ctl:{ROOM}"),
        ("yes", f"ctl:{ROOM}"),
        ("no", f"ctl:{ROOM}"),
        ("regenerate", f"room:{ROOM}"),  # reaches the agent: on the room's lane
        ("yes", f"ctl:{ROOM}"),
    ]
    assert {i.payload["target"] for i in items} == {"$reply"}


def test_redactions_in_both_room_version_shapes():
    old = ev({}, type="m.room.redaction")
    old = attrs.evolve(old, redacts="$a")
    new = ev({"redacts": "$b"}, type="m.room.redaction")
    items = classify(batch(old, new, ev({}, type="m.room.redaction")), policy())
    assert [(i.kind, i.payload["target"], str(i.lane)) for i in items] == [
        ("redaction", "$a", f"ctl:{ROOM}"),
        ("redaction", "$b", f"ctl:{ROOM}"),
    ]


def test_threads_carry_their_root_and_a_fallback_reply_is_no_quote():
    in_thread = ev(
        {
            "msgtype": "m.text",
            "body": "in the thread",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": "$root",
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": "$last"},
            },
        }
    )
    quoting = _reply("real reply", rel_type="m.thread", event_id="$root")
    command = ev(
        {
            "msgtype": "m.text",
            "body": "!clear",
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
        }
    )
    items = classify(batch(in_thread, quoting, command), policy())
    assert [(i.kind, i.payload.get("thread"), i.payload.get("reply_to")) for i in items] == [
        ("text", "$root", None),
        ("text", "$root", "$orig"),
        ("command", "$root", None),
    ]
    assert all(i.thread == "$root" for i in items)
