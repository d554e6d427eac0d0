"""Working-room commands: parsing, and what each one does.

Commands start with ``!``. Parsing is pure (``parse_command``) so it is easy to
test and fuzz. ``!stop``, ``!status`` and an answer to a pending confirmation run
on the room's *control* lane, so they never wait behind the turn they are about;
everything else runs in order with the room's turns.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from agent_client import AgentFailure
from surfaces.bot.context import Bot
from surfaces.bot.workspaces import Workspaces
from surfaces.i18n import human_size
from surfaces.state import ChatRecord, InboxItem

log = structlog.get_logger(__name__)

ALIASES = {"reset": "clear"}
KNOWN = frozenset(
    {
        "new",
        "chats",
        "rename",
        "archive",
        "clear",
        "stop",
        "yes",
        "no",
        "list",
        "remove",
        "status",
        "help",
        "settings",
    }
)
CONTROL = frozenset({"stop", "status"})
MAX_NAME_CHARS = 100


@attrs.frozen
class Command:
    name: str  # canonical, lower case; may be unknown
    args: str  # the rest of the line, stripped
    raw: str  # the command word as typed (for the "unknown" hint)


def parse_command(body: str) -> Command | None:
    """``"!Rename  My chat"`` → ``Command("rename", "My chat", "!Rename")``; not a
    command → None. Only the first line counts; a lone ``!`` is not a command."""
    if not isinstance(body, str):
        return None
    text = body.strip()
    if not text.startswith("!") or len(text) < 2 or text[1].isspace():
        return None
    first = text.partition("\n")[0]
    # Any whitespace separates the command word (a tab or NBSP too, not just " ").
    word, *rest = first.split(None, 1)
    args = rest[0] if rest else ""
    name = word[1:].lower()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        return None
    return Command(ALIASES.get(name, name), " ".join(args.split()), word)


@attrs.define
class Commands:
    bot: Bot
    workspaces: Workspaces
    runner: object  # surfaces.turns.runner.TurnRunner
    lanes: object  # surfaces.bot.lanes.LaneSupervisor

    async def handle(self, item: InboxItem, chat: ChatRecord, cmd: Command) -> None:
        reply = _Replier(self.bot, item)
        if cmd.name not in KNOWN:
            await reply("unknown_command", command=cmd.raw[:40])
            return
        await getattr(self, f"_cmd_{cmd.name}")(item, chat, cmd, reply)

    async def _cmd_new(self, item, chat, cmd, reply) -> None:
        name = cmd.args[:MAX_NAME_CHARS] or None
        new = await self.workspaces.create_chat(chat.owner, name, key=item.event_id)
        await reply("chat_created", name=new.name, chat_id=new.local_id)

    async def _cmd_chats(self, item, chat, cmd, reply) -> None:
        chats = await self.bot.store.chats_of(chat.owner)
        if not chats:
            await reply("chats_empty")
            return
        lines = [self.bot.t("chats_header")]
        for c in chats:
            marker = "▶" if c.room_id == chat.room_id else "•"
            lines.append(self.bot.t("chats_line", marker=marker, chat_id=c.local_id, name=c.name))
        await reply.text("\n".join(lines))

    async def _cmd_rename(self, item, chat, cmd, reply) -> None:
        name = cmd.args[:MAX_NAME_CHARS]
        if not name:
            await reply("rename_usage")
            return
        await self.bot.matrix.put_state_event(chat.room_id, "m.room.name", {"name": name})
        updated = await self.bot.store.update_chat(chat.room_id, name=name)
        if updated is not None:
            await self.workspaces.write_chat_state(updated)
        await reply("renamed", name=name)

    async def _cmd_archive(self, item, chat, cmd, reply) -> None:
        updated = await self.bot.store.update_chat(chat.room_id, status="archived")
        user = await self.bot.store.get_user(chat.owner)
        if user and user.space_id:
            await self.workspaces.link_child(user.space_id, chat.room_id, linked=False)
        if updated is not None:
            await self.workspaces.write_chat_state(updated)
        await reply("archived", chat_id=chat.local_id)

    async def _cmd_clear(self, item, chat, cmd, reply) -> None:
        # Idempotent on re-run: a platform id allocated for this event is reused.
        key = f"clear.{item.event_id}"
        new_id = await self.bot.store.get_value(key)
        if new_id is None:
            new_id = await self.bot.store.allocate_platform_chat_id()
            await self.bot.store.set_value(key, new_id)
        updated = await self.bot.store.update_chat(chat.room_id, platform_chat_id=new_id)
        if updated is not None:
            await self.workspaces.write_chat_state(updated)
        log.info("chat_context_reset", old=chat.platform_chat_id, new=new_id)
        await reply("context_reset")

    async def _cmd_stop(self, item, chat, cmd, reply) -> None:
        if self.runner.stop(chat.room_id):
            log.info("turn_stop_requested")
        else:
            await reply("stop_none")

    async def _cmd_yes(self, item, chat, cmd, reply) -> None:
        await self._answer(item, chat, True, reply)

    async def _cmd_no(self, item, chat, cmd, reply) -> None:
        await self._answer(item, chat, False, reply)

    async def _answer(self, item, chat, approved: bool, reply) -> None:
        if await self.runner.confirm(chat.room_id, approved):
            answer = self.bot.t("confirm_yes_text" if approved else "confirm_no_text")
            await reply("confirm_sent", answer=answer)
            return
        # No pending question: a plain confirming / declining turn.
        text = self.bot.t("confirm_yes_text" if approved else "confirm_no_text")
        await self.runner.run(item, chat, text)

    async def _cmd_list(self, item, chat, cmd, reply) -> None:
        files = await self.bot.store.staged(chat.room_id, chat.owner)
        if not files:
            await reply("files_empty")
            return
        lines = [self.bot.t("files_header")]
        lines += [
            self.bot.t("files_line", n=i, name=f.name, size=human_size(f.size))
            for i, f in enumerate(files, 1)
        ]
        await reply.text("\n".join(lines))

    async def _cmd_remove(self, item, chat, cmd, reply) -> None:
        files = await self.bot.store.staged(chat.room_id, chat.owner)
        arg = cmd.args.lower()
        if arg == "all":
            await self.bot.store.unstage([f.id for f in files])
            await reply("removed_all", count=len(files))
            return
        if not (arg.isascii() and arg.isdigit()):  # "²".isdigit() is True, int() fails
            await reply("remove_usage")
            return
        n = int(arg)
        if not 1 <= n <= len(files):
            await reply("remove_bad_index", n=n, count=len(files))
            return
        await self.bot.store.unstage([files[n - 1].id])
        await reply("removed_one", name=files[n - 1].name)

    async def _cmd_status(self, item, chat, cmd, reply) -> None:
        bot = self.bot
        spec = bot.registry.get(chat.agent_id) or bot.registry.for_user(chat.owner)[0]
        health = bot.t("health_down", code="AGENT_TIMEOUT")
        try:
            with trio.move_on_after(bot.config.agents.status_timeout_s + 1):
                await bot.agents.probe(spec.base_url, chat.platform_chat_id)
                health = bot.t("health_ok")
        except AgentFailure as exc:
            health = bot.t("health_down", code=exc.code)
        queued = max(0, self.lanes.pending(f"room:{chat.room_id}") - 1)
        if self.runner.running(chat.room_id):
            turn = bot.t("status_turn_queued", n=queued) if queued else bot.t("status_turn_running")
        else:
            turn = bot.t("status_turn_idle")
        files = await bot.store.staged(chat.room_id, chat.owner)
        await reply(
            "status",
            agent=spec.label,
            health=health,
            chat_id=chat.local_id,
            platform_chat_id=chat.platform_chat_id,
            turn=turn,
            files=len(files),
        )

    async def _cmd_help(self, item, chat, cmd, reply) -> None:
        await reply("help")

    async def _cmd_settings(self, item, chat, cmd, reply) -> None:
        await reply("settings")


@attrs.define
class _Replier:
    """Replies to one command as a durable notice (exactly once per command)."""

    bot: Bot
    item: InboxItem

    async def __call__(self, key: str, **fields: object) -> None:
        await self.bot.notice(self.item.room_id, key, txn_id=f"{self.item.event_id}.r", **fields)

    async def text(self, text: str) -> None:
        await self.bot.notice_text(self.item.room_id, text, txn_id=f"{self.item.event_id}.r")
