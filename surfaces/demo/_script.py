"""The scripted conversation: one function per step, played in the order of ``STEPS``.

A step takes the :class:`Conversation` and returns when what it shows has happened;
it raises :class:`StepFailed` (or anything) when it did not, and its deadline is the
transcript's. To add a step, write the function and add it to ``STEPS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from matrix_client import RoomEvent
from matrix_client.crypto import MEGOLM_ALGORITHM

from ._conversation import Conversation
from ._transcript import StepFailed, short

#: The largest file the demo user downloads.
MAX_DOWNLOAD_BYTES = 1_000_000
#: What the demo user writes, per locale.
USER_LINES = {
    "ru": {
        "hello": "Привет! Расскажи, что ты умеешь?",
        "notes": "Заметки для агента: купить молоко, дописать отчёт.",
        "what_file": "Что в приложенном файле?",
        "report": "Отчёт демо: всё работает.",
        "remember": "Запомни кодовое слово: маяк.",
        "word": "маяк",
    },
    "en": {
        "hello": "Hi! What can you do?",
        "notes": "Notes for the agent: buy milk, finish the report.",
        "what_file": "What is in the attached file?",
        "report": "Demo report: everything works.",
        "remember": "Remember the code word: lighthouse.",
        "word": "lighthouse",
    },
}


def say(c: Conversation, key: str) -> str:
    """What the demo user writes, in the demo's locale."""
    return USER_LINES.get(c.locale, USER_LINES["en"])[key]


async def open_dm(c: Conversation) -> None:
    c.tr.detail(f"you: create an encrypted direct chat and invite {c.bot_id}")
    dm = await c.user.create_room(
        invite=[c.bot_id],
        is_direct=True,
        preset="trusted_private_chat",
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": MEGOLM_ALGORITHM},
            }
        ],
    )
    c.dm = dm

    def bot_joined() -> bool:
        return any(
            e.type == "m.room.member"
            and e.state_key == c.bot_id
            and e.content.get("membership") == "join"
            for r, e in c.observer.timeline
            if r == dm
        )

    await c.observer.wait_for(bot_joined)
    c.tr.detail("bot joined the direct chat")


async def workspace_appears(c: Conversation) -> None:
    chat_name = c.msg("first_chat_name", n=1)

    def find() -> tuple[str, str] | None:
        space = room = None
        for room_id, state in c.observer.invites.items():
            if (state.get("m.room.create") or {}).get("type") == "m.space":
                space = room_id
            elif (state.get("m.room.name") or {}).get("name") == chat_name:
                room = room_id
        return (space, room) if space and room else None

    space, room = await c.observer.wait_for(find)
    c.space, c.room = space, room
    space_name = (c.observer.invites[space].get("m.room.name") or {}).get("name")
    c.tr.detail(f"invited to the Space «{space_name}» and to «{chat_name}»; joining both")
    encryption = (c.observer.invites[room].get("m.room.encryption") or {}).get("algorithm")
    if encryption:
        c.tr.detail(f"«{chat_name}» is end-to-end encrypted ({encryption}) 🔒")
    await c.user.join(space)
    await c.user.join(room)
    welcome = c.msg("welcome", name="").split(",")[0]  # "Привет" / "Hi"
    event = await c.observer.wait_for(
        lambda: next(
            (
                e
                for r, e in c.observer.timeline
                if r == room
                and e.sender == c.bot_id
                and e.type == "m.room.message"
                and e.content.get("body", "").startswith(welcome)
            ),
            None,
        )
    )
    c.tr.detail(f"bot{c.observer.lock(event)}: {short(event.content.get('body', ''))}")


async def streamed_reply(c: Conversation) -> None:
    room = c.current_room()
    mark = await c.send_text(room, say(c, "hello"))
    await c.wait_reply(mark, room)


async def new_chat(c: Conversation) -> None:
    room = c.current_room()
    known = set(c.observer.invites)
    prefix = c.msg("chat_created", name="\x00", local_id="").split("\x00")[0]
    mark = await c.send_text(room, "!new")
    await c.wait_notice(mark, room, lambda body: body.startswith(prefix))
    new_room = await c.observer.wait_for(
        lambda: next((r for r in c.observer.invites if r not in known), None)
    )
    name = (c.observer.invites[new_room].get("m.room.name") or {}).get("name")
    await c.user.join(new_room)
    c.tr.detail(f"joined the new chat «{name}»; the script continues there")
    c.room = new_room


async def file_to_agent(c: Conversation) -> None:
    room = c.current_room()
    data = (say(c, "notes") + "\n").encode()
    content: dict[str, Any] = {
        "msgtype": "m.file",
        "body": "notes.txt",
        "filename": "notes.txt",
        "info": {"mimetype": "text/plain", "size": len(data)},
    }
    if await c.observer.crypto.encryption(room):
        c.tr.detail(f"you: encrypt notes.txt ({len(data)} bytes), upload it, send it as m.file")
        content["file"] = await c.observer.crypto.upload_encrypted(
            data, content_type="text/plain", filename="notes.txt"
        )
    else:
        c.tr.detail(f"you: upload notes.txt ({len(data)} bytes) and send it as m.file")
        content["url"] = await c.user.upload(data, content_type="text/plain", filename="notes.txt")
    mark = await c.send(room, content, shown="[m.file notes.txt]")
    staged = c.msg("file_staged", name="\x00", size="").split("\x00")[0]
    await c.wait_notice(mark, room, lambda body: body.startswith(staged))
    mark = await c.send_text(room, say(c, "what_file"))
    reply = await c.wait_reply(mark, room)
    # The agent lists what it received ("Attachments (1): incoming/notes.txt (92
    # bytes)"); on a reused state dir the name may be "notes (1).txt".
    if "Attachments (1)" not in reply or "notes" not in reply:
        raise StepFailed("the agent's reply does not list the file as an attachment")


async def file_from_agent(c: Conversation) -> None:
    room = c.current_room()
    text = say(c, "report")
    mark = await c.send_text(room, f"/file report.txt {text}")

    def file_event() -> RoomEvent | None:
        for e in c.bot_messages(mark, room):
            if e.content.get("msgtype") == "m.file" and (
                e.content.get("url") or e.content.get("file")
            ):
                return e
        return None

    event = await c.observer.wait_for(file_event)
    info = event.content.get("info") or {}
    file = event.content.get("file")
    url = file.get("url") if isinstance(file, dict) else event.content["url"]
    c.tr.detail(
        f"bot (m.file){c.observer.lock(event)}: {event.content.get('body')} "
        f"({info.get('mimetype')}, {info.get('size')} bytes) {url}"
    )
    await c.wait_reply(mark, room)
    if isinstance(file, dict):
        data = await c.observer.crypto.download_decrypted(file, max_bytes=MAX_DOWNLOAD_BYTES)
        how = "downloaded and decrypted (SHA-256 checked)"
    else:
        data = (await c.user.download(url, max_bytes=MAX_DOWNLOAD_BYTES)).data
        how = "downloaded"
    got = data.decode("utf-8", errors="replace")
    c.tr.detail(f"{how} {len(data)} bytes: {short(got)}")
    if got.strip() != text:
        raise StepFailed(f"downloaded content differs: {got!r}")


async def list_chats(c: Conversation) -> None:
    room = c.current_room()
    header = c.msg("chats_header")
    mark = await c.send_text(room, "!chats")
    await c.wait_notice(mark, room, lambda body: body.startswith(header))


async def status_online(c: Conversation) -> None:
    room = c.current_room()
    prefix = c.msg("status", agent="\x00", health="", local_id="", platform_chat_id="",
                   turn="", files="", usage="").split("\x00")[0]  # fmt: skip
    mark = await c.send_text(room, "!status")
    body = await c.wait_notice(mark, room, lambda body: body.startswith(prefix))
    if c.msg("presence_online") not in body.splitlines()[0]:
        raise StepFailed("!status does not show the agent online")


def _before(c: Conversation, key: str, **fields: str) -> str:
    """The fixed start of a bot text (up to its first field)."""
    return c.msg(key, **{"name": "\x00", **fields}).split("\x00")[0]


async def save_and_load(c: Conversation) -> None:
    """The transcript survives a fresh agent conversation: save, clear, load, and the
    agent (the reference agent's /recall) knows what was said before."""
    room = c.current_room()
    mark = await c.send_text(room, say(c, "remember"))
    await c.wait_reply(mark, room)
    saved = (_before(c, "saved", n="0"), _before(c, "saved_replaced", n="0"))
    mark = await c.send_text(room, "!save demo")
    await c.wait_notice(mark, room, lambda body: body.startswith(saved))
    mark = await c.send_text(room, "!clear")
    await c.wait_notice(mark, room, lambda body: body == c.msg("context_reset"))
    mark = await c.send_text(room, "/recall")
    forgotten = await c.wait_reply(mark, room)
    if say(c, "word") in forgotten:
        raise StepFailed("the agent still remembers after !clear")
    mark = await c.send_text(room, "!load demo")
    loaded = _before(c, "context_loaded", n="0", omitted="")
    await c.wait_notice(mark, room, lambda body: body.startswith(loaded))
    await c.wait_reply(mark, room)
    mark = await c.send_text(room, "/recall")
    recalled = await c.wait_reply(mark, room)
    if say(c, "word") not in recalled:
        raise StepFailed("the agent does not know the earlier conversation after !load")


@attrs.frozen
class Step:
    """A transcript title and the function that plays it."""

    title: str
    run: Callable[[Conversation], Awaitable[None]]


STEPS: tuple[Step, ...] = (
    Step("direct chat: create it and invite the bot", open_dm),
    Step("workspace: the Space and the first chat appear", workspace_appears),
    Step("a message gets a streamed reply", streamed_reply),
    Step("!new creates a second chat", new_chat),
    Step("a file goes to the agent with the next turn", file_to_agent),
    Step("the agent sends a file back (/file report.txt)", file_from_agent),
    Step("!chats lists the chats", list_chats),
    Step("!status shows the agent online", status_online),
    Step("!save, !clear, !load: the agent knows the earlier conversation", save_and_load),
)


async def play_script(c: Conversation, steps: tuple[Step, ...] = STEPS) -> None:
    """Run the steps in order; the first failure stops the script (StepFailed)."""
    for step in steps:
        with c.tr.step(step.title):
            await step.run(c)
