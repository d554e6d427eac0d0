"""Every agent failure → a specific notice, partial reply marked interrupted,
staged files kept, and the room keeps working."""

from __future__ import annotations

import pytest
import trio
from turn_helpers import frame, send_file

SHORT = {
    "SURFACES_AGENTS__CONNECT_TIMEOUT_S": "2",
    "SURFACES_AGENTS__STATUS_TIMEOUT_S": "3",
    "SURFACES_AGENTS__FIRST_TEXT_TIMEOUT_S": "4",
    "SURFACES_AGENTS__IDLE_TIMEOUT_S": "5",
    "SURFACES_AGENTS__TOTAL_TIMEOUT_S": "20",
    "SURFACES_AGENTS__RETRIES": "0",
}


async def _hang_handshake(request):
    await trio.sleep_forever()


async def _no_status(request):
    ws = await request.accept()
    while True:
        await ws.get_message()


async def _idle_after_text(request):
    ws = await request.accept()
    await ws.send_message(frame("STATUS"))
    await ws.get_message()
    await ws.send_message(frame("AGENT_EVENT_TEXT_CHUNK", text="partial answer"))
    while True:
        await ws.get_message()


async def _reject_404(request):
    await request.reject(404, body=b"nope")


async def _not_json_after_text(request):
    ws = await request.accept()
    await ws.send_message(frame("STATUS"))
    await ws.get_message()
    await ws.send_message(frame("AGENT_EVENT_TEXT_CHUNK", text="partial answer"))
    await ws.send_message("{garbage")
    await trio.sleep_forever()


CASES = {
    # name: (agent handler or None, OSError on connect?, message, notice key, fields, partial)
    "unavailable_oserror": (None, True, "hi", "agent_unavailable", {}, None),
    "unavailable_404": (_reject_404, False, "hi", "agent_unavailable", {}, None),
    "timeout_connect": (_hang_handshake, False, "hi", "agent_timeout", {"phase": "connect"}, None),
    "timeout_status": (_no_status, False, "hi", "agent_timeout", {"phase": "status"}, None),
    "timeout_first_text": (None, False, "/silent", "agent_timeout", {"phase": "first_text"}, None),
    "timeout_idle": (
        _idle_after_text,
        False,
        "hi",
        "agent_timeout",
        {"phase": "idle"},
        "partial answer",
    ),
    "timeout_total": (
        None,
        False,
        "/slow 1 100",
        "agent_timeout",
        {"phase": "total"},
        "slow 1/100",
    ),
    "disconnected": (None, False, "/disconnect", "agent_disconnected", {}, "about to vanish"),
    "protocol_garbage": (None, False, "/garbage", "agent_protocol", {}, None),
    "protocol_garbage_midstream": (
        _not_json_after_text,
        False,
        "hi",
        "agent_protocol",
        {},
        "partial answer",
    ),
    "protocol_big_frame": (None, False, "/big 10000000", "agent_protocol", {}, None),
    "agent_error": (None, False, "/error QUOTA", "agent_error", {"code": "QUOTA"}, None),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_failure_notice_partial_interrupted_files_kept_room_works(chat, autojump_clock, case):
    handler, oserror, message, key, fields, partial = CASES[case]
    h = chat.h
    await h.restart(**SHORT)
    await send_file(chat, "notes.txt", b"hello file")
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert [f.name for f in staged] == ["notes.txt"]
    chat.mark()

    h.agent_handler = handler
    if oserror:
        h.connect_error = OSError("connection refused")
    await chat.say(message, settle=60)

    replies = chat.replies()
    if "phase" in fields:
        fields = {"phase": chat.t(f"phase_{fields['phase']}")}
    assert replies[-1] == chat.t(key, **fields)
    if partial is None:
        assert len(replies) == 1
    else:
        assert len(replies) == 2
        assert replies[0].startswith(partial)
        assert replies[0].endswith(chat.t("interrupted_mark"))
    # typing is shown only after surfaces.turns.typing.DELAY_S, and always cleared
    log = chat.typing_log()
    assert not log or log[-1] is False
    # the staged file is still staged
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert [f.name for f in staged] == ["notes.txt"]
    assert len(h.app.turns) == 0

    # the room keeps working: the next message is answered (and carries the file)
    h.agent_handler = None
    h.connect_error = None
    chat.mark()
    await chat.say("again", settle=30)
    answer = chat.replies()
    assert len(answer) == 1
    assert "again" in answer[0]
    assert "incoming/notes.txt (10 bytes)" in answer[0]
    assert await h.app.store.staged(chat.room, chat.user.user_id) == []
