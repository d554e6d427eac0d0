"""Files in (download, limits, names, staging) and files out (upload, unsafe paths)."""

from __future__ import annotations

import os

import pytest
from turn_helpers import send_file, sends_file


@pytest.mark.parametrize(
    ("msgtype", "name", "mime"),
    [
        ("m.file", "report.pdf", "application/pdf"),
        ("m.image", "cat.png", "image/png"),
        ("m.audio", "voice.ogg", "audio/ogg"),
        ("m.video", "clip.mp4", "video/mp4"),
    ],
)
async def test_file_in_staged_then_carried_by_next_turn(chat, autojump_clock, msgtype, name, mime):
    h = chat.h
    data = os.urandom(1234)
    await send_file(chat, name, data, msgtype=msgtype, mime=mime)
    path = h.workspace / "incoming" / name
    assert path.read_bytes() == data
    # downloaded through the authenticated media API
    assert h.hs.requests_to("GET", "/_matrix/client/v1/media/download/*")
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert [(f.rel_path, f.size) for f in staged] == [(f"incoming/{name}", 1234)]
    assert chat.replies()[-1].startswith("📎")
    await chat.say("!list")
    assert name in chat.replies()[-1]
    chat.mark()
    await chat.say("look at this")
    assert f"incoming/{name} (1234 bytes)" in chat.replies()[-1]
    assert await h.app.store.staged(chat.room, chat.user.user_id) == []


async def test_collision_safe_names_and_remove(chat, autojump_clock):
    h = chat.h
    await send_file(chat, "report.pdf", b"one")
    await send_file(chat, "report.pdf", b"two")
    await send_file(chat, "other.txt", b"three")
    incoming = h.workspace / "incoming"
    assert (incoming / "report.pdf").read_bytes() == b"one"
    assert (incoming / "report (1).pdf").read_bytes() == b"two"
    await chat.say("!remove 2")
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert [f.rel_path for f in staged] == ["incoming/report.pdf", "incoming/other.txt"]
    await chat.say("!list")
    assert "report (1).pdf" not in chat.replies()[-1]
    await chat.say("!remove all")
    assert await h.app.store.staged(chat.room, chat.user.user_id) == []


@pytest.mark.parametrize("declared", [True, False])
async def test_oversize_file_refused_with_notice(chat, autojump_clock, declared):
    h = chat.h
    await h.restart(SURFACES_BOT__MAX_FILE_BYTES="100")
    chat.mark()
    await send_file(chat, "big.bin", b"x" * 101, declared_size=None if declared else 10)
    assert chat.replies()[-1].startswith(
        chat.t("file_too_large", name="big.bin", size="X", limit="Y")[:5]
    )
    assert "big.bin" in chat.replies()[-1]
    assert not (h.workspace / "incoming" / "big.bin").exists()
    assert await h.app.store.staged(chat.room, chat.user.user_id) == []


@pytest.mark.parametrize(
    "name", ["../../x", "a\x00b\x1bc\n.txt", "", "   ", "..", "/etc/passwd", "n" * 300 + ".txt"]
)
async def test_hostile_names_stay_in_incoming(chat, autojump_clock, name):
    h = chat.h
    await send_file(chat, name, b"data")
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert len(staged) == 1
    rel = staged[0].rel_path
    assert rel.startswith("incoming/")
    stored = (h.workspace / rel).resolve()
    assert stored.parent == (h.workspace / "incoming").resolve()
    assert stored.read_bytes() == b"data"
    base = rel.removeprefix("incoming/")
    assert base
    assert not any(ord(c) < 32 for c in base)
    assert len(base.encode()) <= 255
    assert not (h.workspace.parent / "x").exists()


async def test_file_out_posted_as_media(chat, autojump_clock):
    h = chat.h
    await chat.say("/file report.txt hello world")
    msgs = chat.messages()
    media = [m for m in msgs if m.get("msgtype") == "m.file"]
    assert len(media) == 1
    m = media[0]
    assert m["body"] == "report.txt"
    assert m["info"]["mimetype"].startswith("text/plain")
    assert m["info"]["size"] == len(b"hello world\n")
    data, _, _ = h.hs.media(m["url"])
    assert data == b"hello world\n"
    assert "Here is report.txt." in chat.replies()


async def test_file_out_png_is_image(chat, autojump_clock):
    await chat.say("/file pic.png")
    media = [m for m in chat.messages() if "url" in m]
    assert media[0]["msgtype"] == "m.image"
    assert media[0]["info"]["mimetype"] == "image/png"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../../outside.txt", "/workspace/link/secret.txt", "missing.txt"]
)
async def test_file_out_unsafe_or_missing_path_gets_notice(chat, autojump_clock, path):
    h = chat.h
    outside = h.workspace.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (h.workspace.parent / "outside.txt").write_text("secret")
    (h.workspace / "link").symlink_to(outside)

    h.agent_handler = sends_file(path)
    await chat.say("send it")
    replies = chat.replies()
    key = "file_out_missing" if path == "missing.txt" else "file_out_unsafe"
    assert chat.t(key, path=path) in replies
    assert "done" in replies
    assert not [m for m in chat.messages() if "url" in m]
    h.agent_handler = None
    chat.mark()
    await chat.say("still alive?")
    assert "still alive?" in chat.replies()[-1]
