"""Hostile input: fuzzed sync responses, events, commands, file names and paths,
plus huge/empty/odd-unicode messages through the whole bot.

Hypothesis runs are bounded (``max_examples`` ≤ 200, no deadline); the example
database is off so every run is the same amount of work.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import INTERRUPTED, answers_next_message, notices, replies
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from matrix_client import ResponseFormatError, SyncBatch, SyncResponse, TimelineItem
from matrix_client._converter import structure
from matrix_client._sync import invite_item
from matrix_client.testing import Fault
from surfaces.files import (
    MAX_NAME_BYTES,
    OutboundFileError,
    resolve_agent_path,
    sanitize_filename,
)
from surfaces.intake import ALIASES, KNOWN, Command, IntakePolicy, classify, parse_command

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

BOT = "@bot:test.local"
ALICE = "@alice:test.local"

# ---- strategies -------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=10), inner, max_size=4),
    ),
    max_leaves=20,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-formed shape, sometimes any JSON value instead."""
    return st.one_of(strategy, strategy, strategy, json_values)


msgtypes = st.sampled_from(
    [
        "m.text",
        "m.emote",
        "m.notice",
        "m.file",
        "m.image",
        "m.audio",
        "m.video",
        "m.location",
        "x.custom",
    ]
)
bodies = st.one_of(
    st.sampled_from(["!help", "!new x", "!stop", "!yes", "!no", "!status", "", "   ", "hi"]),
    st.text(max_size=40),
)
contents = st.fixed_dictionaries(
    {},
    optional={
        "msgtype": _maybe(msgtypes),
        "body": _maybe(bodies),
        "url": _maybe(st.just("mxc://test.local/abc")),
        "filename": _maybe(st.text(max_size=20)),
        "info": _maybe(st.dictionaries(st.sampled_from(["size", "mimetype"]), _scalars)),
        "m.relates_to": _maybe(
            st.fixed_dictionaries(
                {"rel_type": st.sampled_from(["m.replace", "m.thread"]), "event_id": st.just("$x")}
            )
        ),
        "membership": _maybe(st.sampled_from(["join", "invite", "leave"])),
        "is_direct": _maybe(st.booleans()),
    },
)
senders = st.sampled_from([BOT, ALICE, "@mallory:evil.example", "", "not-an-mxid"])
event_ids = st.builds(lambda n: f"$e{n}", st.integers(0, 30))
events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": _maybe(event_ids),
        "type": _maybe(
            st.sampled_from(
                [
                    "m.room.message",
                    "m.room.member",
                    "m.room.encrypted",
                    "m.room.redaction",
                    "m.reaction",
                ]
            )
        ),
        "sender": _maybe(senders),
        "content": _maybe(contents),
        "state_key": _maybe(st.sampled_from(["", BOT, ALICE])),
        "origin_server_ts": _maybe(st.integers(0, 2**53)),
        "unsigned": _maybe(st.dictionaries(st.text(max_size=5), _scalars, max_size=2)),
        "redacts": _maybe(event_ids),
    },
)
room_ids = st.sampled_from(["!a:test.local", "!b:test.local", ""])
timelines = st.fixed_dictionaries(
    {},
    optional={
        "events": _maybe(st.lists(_maybe(events), max_size=6)),
        "limited": _maybe(st.booleans()),
        "prev_batch": _maybe(st.text(max_size=5)),
    },
)
joined = st.fixed_dictionaries(
    {},
    optional={
        "timeline": _maybe(timelines),
        "state": _maybe(
            st.fixed_dictionaries({}, optional={"events": st.lists(events, max_size=3)})
        ),
        "ephemeral": json_values,
        "account_data": json_values,
    },
)
invited = st.fixed_dictionaries(
    {},
    optional={
        "invite_state": _maybe(
            st.fixed_dictionaries(
                {}, optional={"events": _maybe(st.lists(_maybe(events), max_size=4))}
            )
        )
    },
)
sync_bodies = st.fixed_dictionaries(
    {},
    optional={
        "next_batch": _maybe(st.text(min_size=1, max_size=8)),
        "rooms": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "join": _maybe(st.dictionaries(room_ids, _maybe(joined), max_size=3)),
                    "invite": _maybe(st.dictionaries(room_ids, _maybe(invited), max_size=2)),
                    "leave": _maybe(st.dictionaries(room_ids, json_values, max_size=2)),
                },
            )
        ),
        "account_data": json_values,
    },
)


def _batch(response: SyncResponse, since: str | None) -> SyncBatch:
    """What the Syncer would build (without dedup): timeline items in order."""
    items = [
        TimelineItem(room_id=room_id, event=event)
        for room_id, room in response.rooms.join.items()
        for event in room.timeline.events
    ]
    invites = [invite_item(r, room, BOT) for r, room in response.rooms.invite.items()]
    return SyncBatch(
        response=response,
        since=since,
        next_batch=response.next_batch,
        events=items,
        invites=invites,
        left=list(response.rooms.leave),
    )


POLICY = IntakePolicy(own_user_id=BOT, is_allowed=lambda user: user.endswith(":test.local"))
KINDS = {"invite", "text", "command", "file", "encrypted"}


# ---- the sync-response parser -------------------------------------------------------


@FUZZ
@given(st.one_of(sync_bodies, json_values))
def test_fuzz_sync_parser_only_documented_errors(raw):
    """Any JSON-ish /sync body: parsed (malformed rooms/events dropped) or a
    ResponseFormatError — never anything else; what survives is well-typed."""
    try:
        response = structure(raw, SyncResponse, what="sync")
    except ResponseFormatError:
        return
    assert isinstance(response.next_batch, str)
    for room in response.rooms.join.values():
        for event in room.timeline.events:
            assert isinstance(event.event_id, str)
            assert isinstance(event.type, str)
            assert isinstance(event.sender, str)
            assert isinstance(event.content, dict)
            assert event.state_key is None or isinstance(event.state_key, str)
    for room in response.rooms.invite.values():
        for stripped in room.invite_state.events:
            assert isinstance(stripped.state_key, str)


@FUZZ
@given(st.lists(events, max_size=8))
def test_fuzz_malformed_events_skipped_good_ones_kept(noise):
    """A well-formed event survives any amount of malformed neighbours, in order."""
    good = {
        "event_id": "$good",
        "type": "m.room.message",
        "sender": ALICE,
        "content": {"msgtype": "m.text", "body": "hi"},
    }
    raw = {
        "next_batch": "s1",
        "rooms": {"join": {"!a:test.local": {"timeline": {"events": [*noise, good, *noise]}}}},
    }
    response = structure(raw, SyncResponse, what="sync")
    ids = [e.event_id for e in response.rooms.join["!a:test.local"].timeline.events]
    assert "$good" in ids


# ---- the event classifier ------------------------------------------------------------


@FUZZ
@given(sync_bodies, st.sampled_from([None, "s0", "s5"]))
def test_fuzz_classify_never_raises(raw, since):
    """``classify`` on any parsed batch: never raises; only known kinds; never the
    bot's own events, never disallowed senders, never notices or edits as prompts."""
    try:
        response = structure(raw, SyncResponse, what="sync")
    except ResponseFormatError:
        return
    batch = _batch(response, since)
    items = classify(batch, POLICY)
    by_id = {t.event.event_id: t.event for t in batch.events}
    for item in items:
        assert item.kind in KINDS
        assert item.sender != BOT
        assert POLICY.is_allowed(item.sender)
        assert item.lane.split(":", 1)[0] in ("room", "ctl", "invite")
        if item.kind in ("text", "command"):
            content = by_id[item.event_id].content
            assert content.get("msgtype") in ("m.text", "m.emote")
            assert (content.get("m.relates_to") or {}).get("rel_type") != "m.replace"
            assert item.payload["body"].strip()
    if since is None:
        assert all(item.kind == "invite" for item in items)


# ---- the command parser ----------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=60), st.from_regex(r"\A![A-Za-z_\-]{0,10}[\s\S]{0,30}\Z")))
@example("!")
@example("! help")
@example("!\u00a0help")
@example("!help\x00")
@example("!ＨＥＬＰ")
@example("!İ")
def test_fuzz_parse_command_never_raises(body):
    """Any text: a Command or None, never an exception; a command's name is
    lower-case word characters and its args are one line, whitespace-normalised."""
    cmd = parse_command(body)
    if cmd is None:
        return
    assert body.strip().startswith("!")
    assert cmd.name
    assert all(c.isalnum() or c in "-_" for c in cmd.name)
    assert cmd.name == cmd.name.lower() or cmd.name in ALIASES.values()
    assert "\n" not in cmd.args
    assert cmd.args == " ".join(cmd.args.split())


words = st.text(
    alphabet=st.characters(categories=["L", "N"], exclude_characters="!"),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(
    st.sampled_from(sorted(KNOWN | set(ALIASES))),
    st.lists(words, max_size=4),
    st.sampled_from([" ", "  ", "\t", " \u00a0"]),
    st.booleans(),
)
def test_round_trip_sensible_commands(name, args, sep, upper):
    """``!<name> <args>`` (any case, any spacing) parses back to the canonical
    name and the space-joined args; a second line is ignored."""
    typed = name.upper() if upper else name
    body = f"  !{typed}{sep if args else ''}{sep.join(args)}\nsecond line  "
    cmd = parse_command(body)
    canonical = ALIASES.get(name, name)
    assert cmd == Command(canonical, " ".join(args), f"!{typed}"), (body, cmd)


# ---- hostile file names and paths -------------------------------------------------


HOSTILE_NAMES = [
    "../../etc/passwd",
    "..",
    ".",
    "...",
    "",
    " ",
    "/",
    "\\",
    "C:\\Windows\\system32\\x.dll",
    "con",
    "CON.txt",
    "nul.tar.gz",
    "com1",
    "LPT9.doc",
    "invoice\u202efdp.exe",
    "a\x00b",
    "\x00",
    "\n\r\t",
    "report\u200b.pdf",
    "e\u0301.txt",
    "\ufeff.bashrc",
    ".hidden",
    "x" * 1000 + ".pdf",
    "я" * 300 + ".txt",
    "🦄" * 100,
    "a/../../b",
    "%2e%2e%2fsecret",
    "file:name?.txt",
    "\ud800.txt",
    "name.",
    "name ",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_sanitize_hostile_names(name):
    """A hostile upload name becomes one safe, non-empty path component."""
    _check_safe_name(name, sanitize_filename(name))


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_sanitize_filename(name):
    """Any name: one safe, non-empty component, ≤ MAX_NAME_BYTES, idempotent."""
    safe = sanitize_filename(name)
    _check_safe_name(name, safe)
    assert sanitize_filename(safe) == safe


def _check_safe_name(raw: str, safe: str) -> None:
    assert safe, raw
    assert "/" not in safe
    assert "\\" not in safe
    assert "\x00" not in safe
    assert safe not in (".", "..")
    assert not safe.startswith(".")
    assert not any(c in safe for c in '<>:"|?*')
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in safe), repr(safe)
    assert "\u202e" not in safe
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert safe == safe.strip()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "out").mkdir(parents=True)
    (ws / "out" / "ok.txt").write_text("ok")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", ws / "out" / "escape.txt")
    os.symlink(ws / "out", ws / "inner-link")
    os.symlink(ws / "loop", ws / "loop")
    return ws


HOSTILE_PATHS = [
    "/etc/passwd",
    "../secret.txt",
    "out/../../secret.txt",
    "/workspace/../secret.txt",
    "/agents/0/../../secret.txt",
    "out/escape.txt",
    "/workspace/out/escape.txt",
    "loop",
    "inner-link/escape.txt",
    "",
    " ",
    "\x00",
    "out/ok.txt\x00.png",
    "/workspace",
    "out",
    "//etc/passwd",
    "/agents",
    "/agents/0",
    "x" * 5000,
    "out/" + "a/" * 2000 + "b",
    "\ud800",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("raw", HOSTILE_PATHS)
def test_resolve_hostile_paths(workspace, raw):
    """A hostile agent path is refused with an OutboundFileError (a notice for the
    user), never resolved outside the workspace, never another exception."""
    _check_resolution(workspace, raw)


def test_resolve_good_paths(workspace):
    for raw in (
        "out/ok.txt",
        "/workspace/out/ok.txt",
        "/agents/7/out/ok.txt",
        "./out/./ok.txt",
        "inner-link/ok.txt",
        str(workspace / "out" / "ok.txt"),
    ):
        assert resolve_agent_path(raw, workspace) == (workspace / "out" / "ok.txt").resolve()


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "..",
                    ".",
                    "out",
                    "ok.txt",
                    "escape.txt",
                    "inner-link",
                    "loop",
                    "",
                    "workspace",
                    "agents",
                    "0",
                ]
            ),
            st.text(max_size=6),
        ),
        max_size=6,
    ),
    st.sampled_from(["", "/", "/workspace/", "/agents/3/"]),
)
def test_fuzz_resolve_agent_path(workspace, parts, prefix):
    """Any path the agent may name: inside the workspace, or OutboundFileError."""
    _check_resolution(workspace, prefix + "/".join(parts))


def _check_resolution(workspace: Path, raw: str) -> None:
    try:
        resolved = resolve_agent_path(raw, workspace)
    except OutboundFileError:
        return
    root = workspace.resolve()
    assert root in resolved.parents, (raw, resolved)
    assert resolved.is_file()
    assert resolved.read_text() != "secret"


# ---- odd messages through the whole bot -------------------------------------------


async def _onboarded(h):
    alice = h.user("alice", displayname="Alice")
    _, _, room = await h.onboard(alice)
    return alice, room


async def test_huge_message_1mb(harness, autojump_clock):
    """User sees: a 1 MB message is answered: a notice «Сообщение слишком длинное:
    агенту ушли первые 32000 символов.» and the echo of 32 000 characters split over
    a few messages (each under the 64 KiB event limit), complete; no crash."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "x" * (1024 * 1024))
    await h.settle(60)
    assert notices(h, room) == ["Сообщение слишком длинное: агенту ушли первые 32000 символов."]
    parts = replies(h, room)[1:]  # the echo continues over several messages (64 KiB limit)
    assert 1 <= len(parts) <= 6, [p[:40] for p in parts]
    echoed = "".join(parts)
    assert echoed.count("x") >= 32_000
    assert INTERRUPTED not in echoed
    before = len(h.bot_texts(room))
    h.hs.text_as(alice, room, "/instant")  # the echo would quote the 32 000 chars again
    await h.settle(30)
    assert h.bot_texts(room)[before:] == ["ok"]


@pytest.mark.parametrize(
    "content",
    [
        {"msgtype": "m.text", "body": ""},
        {"msgtype": "m.text", "body": "   \n\t "},
        {"msgtype": "m.text"},
        {"msgtype": "m.text", "body": None},
        {"msgtype": "m.text", "body": ["list"]},
        {"body": "no msgtype"},
        {"msgtype": "m.notice", "body": "a notice"},
        {"msgtype": "m.text", "body": "an edit", "m.relates_to": {"rel_type": "m.replace"}},
        {"msgtype": "m.file", "body": "f.txt"},
        {"msgtype": "m.file", "body": "../../etc/passwd", "url": "mxc://test.local/none"},
        {"msgtype": "m.image", "url": 5},
    ],
    ids=lambda c: json.dumps(c, ensure_ascii=True)[:40],
)
async def test_empty_and_malformed_messages(harness, autojump_clock, content):
    """User sees: an empty / malformed / notice / edit message is ignored or gets
    at most one notice — no reply bubble, no crash; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.send_as(alice, room, content)
    await h.settle(30)
    assert replies(h, room)[1:] == []
    assert len(notices(h, room)) <= 1
    await answers_next_message(h, alice, room)


UNICODE_BODIES = [
    "مرحبا بالعالم שלום",  # RTL
    "\u202eevil\u202c text \u2067isolate\u2069",  # bidi controls
    "zero\u200bwidth\u200d\u2060joiner\ufeff",  # zero-width
    "Z̴̡̛̙̲͇̝͙̻̈́̏̋̓a̵̧̖͈̽͂l̵̡͖̇g̵̣̿o" * 50,  # stacked combining marks
    "e\u0301\u0301\u0301" * 1000,
    "nul\x00inside\x00",
    "🦄👩‍👩‍👧‍👦🏳️‍🌈" * 200,
    "\U0010ffff\ufffe\uffff",
    "!help\u200b",
    "!\u202ehelp",
    "\u200b\u200b",  # only zero-width spaces: not whitespace to str.strip, so a turn
]


@pytest.mark.parametrize("body", UNICODE_BODIES, ids=range(len(UNICODE_BODIES)))
async def test_unicode_edge_cases(harness, autojump_clock, body):
    """User sees: an answer (echo containing the text, or a command reply/notice)
    for odd unicode — never a crash; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, body)
    await h.settle(30)
    shown = h.bot_texts(room)[1:]
    assert len(shown) == 1, shown
    assert INTERRUPTED not in shown[0]
    await answers_next_message(h, alice, room)


@pytest.mark.parametrize(
    "escaped",
    [r"lone \ud800 high", r"lone \udfff low", r"swapped \udc00\ud800", r"nul \u0000 esc"],
)
async def test_surrogates_via_json_escapes(harness, autojump_clock, escaped):
    """A /sync body with lone surrogates or NUL as JSON escapes (valid JSON, invalid
    Unicode). User sees: the odd message answered (echo, surrogates replaced) or
    ignored — not a turn that fails 3× and ends in «Не удалось обработать
    сообщение…»; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "poke")  # wakes the long-poll in flight
    await h.settle(0.001)
    event = (
        f'{{"event_id": "$odd1", "type": "m.room.message", "sender": "{alice.user_id}", '
        f'"origin_server_ts": 1, "content": {{"msgtype": "m.text", "body": "{escaped}"}}}}'
    )
    rooms = f'{{"join": {{"{room}": {{"timeline": {{"events": [{event}]}}}}}}}}'
    raw = f'{{"next_batch": "s{h.hs.stream_position}", "rooms": {rooms}}}'.encode()
    h.hs.inject(
        "GET",
        "/sync",
        Fault("response", status=200, body=raw, headers={"content-type": "application/json"}),
    )
    await h.settle(60)
    assert h.hs.pending_faults() == 0
    shown = h.bot_texts(room)[1:]
    assert len(shown) in (1, 2), shown  # «poke» answered; the odd one answered or ignored
    assert "«poke»" in shown[0]
    # Not a turn that crashed three times and ended as a poison notice:
    assert not any("Не удалось обработать" in t for t in shown), shown
    await answers_next_message(h, alice, room)
