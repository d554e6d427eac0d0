"""The reference agent: the server side of the protocol, for tests, demos, benchmarks.

Endpoints: ``/v1/agent_ws/{chat_id}/`` under any prefix (``/agent_0/v1/agent_ws/7/``
as behind the platform's proxy); anything else is rejected with HTTP 404.

Each connection: STATUS → USER_MESSAGE → reply → END. The default reply (``echo``)
remembers the conversation per chat id in memory (turn number and the previous
message), lists the attachments with their sizes as found in the workspace
(``missing`` / ``outside the workspace`` otherwise), and streams in several chunks.

Behaviour grammar — a message starting with ``/`` selects a scripted behaviour;
the server option ``behaviour`` (same grammar, slash optional) applies to every
other message:

=====================  ===========================================================
``/echo``              the default reply (above)
``/slow [S] [N]``      N chunks (default 5), S seconds apart (default 1.0)
``/chunks N``          N small text chunks as fast as possible (default 10)
``/long N``            a reply of N characters (default 10000) in 1000-char chunks
``/big N``             one text frame of N characters (frame-size limits)
``/file NAME [TEXT]``  writes ``workspace/out/NAME`` then sends
                       ``AGENT_EVENT_SEND_FILE`` with ``/workspace/out/NAME``
``/tools [S]``         TOOL_CALL_CHUNK, TOOL_RESULT, CUSTOM_UPDATE, S seconds of
                       "work" (default 0.5), then text
``/dup-end``           text, END, END (the upstream duplicate-END bug)
``/error [CODE]``      ``ERROR`` (code default ``REFERENCE_ERROR``) instead of a reply
``/disconnect``        one chunk, then closes the socket without END
``/graceful``          ``GRACEFUL_DISCONNECT`` instead of a reply
``/no-status``         as a message: the *next* connection for this chat gets no
                       STATUS; as the server behaviour: no connection ever does
``/silent``            nothing after STATUS (client's first-text timeout)
``/confirm``           CONFIRM_REQUEST, waits for USER_CONFIRM, replies
                       ``approved`` / ``declined``
``/garbage``           a frame that is not JSON
``/unknown``           an unknown frame type, then the echo reply
``/instant``           a single ``ok`` chunk and END, no delays (benchmarks)
``/recall``            what it remembers of this chat: the user's earlier messages,
                       those of a transcript primer it was given included
``/help``              this list
=====================  ===========================================================

Every STATUS carries ``boot_id``, random per agent instance (a restarted reference
agent has a new one: the bot then offers ``!restore``). A message that is a
transcript primer (``<<<SURFACES TRANSCRIPT v1 …``, docs/agent-protocol.md) is
acknowledged with the count of exchanges it carries, and its ``user:`` lines join
what ``/recall`` lists.

Attachment paths are relative to the workspace; a leading ``/workspace/`` (the
agent's own view of it) is accepted; a path that resolves outside is refused.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

log = structlog.get_logger(__name__)

AGENT_PATH = re.compile(r"^(?P<prefix>(?:/[^/?#]+)*)/v1/agent_ws/(?P<chat>[^/?#]+)/?(?:\?.*)?$")
WORKSPACE_MOUNT = "/workspace"

BEHAVIOURS = [
    "echo",
    "slow",
    "chunks",
    "long",
    "big",
    "file",
    "tools",
    "dup-end",
    "error",
    "disconnect",
    "graceful",
    "no-status",
    "silent",
    "confirm",
    "garbage",
    "unknown",
    "instant",
    "recall",
    "help",
]

PRIMER_BEGIN = "<<<SURFACES TRANSCRIPT v1"
_RECALL_MAX = 20  # earlier messages /recall lists at most

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def parse_behaviour(text: str) -> tuple[str, list[str]] | None:
    """``"/chunks 5"`` → ``("chunks", ["5"])``; None if not a known behaviour."""
    words = text.strip().split()
    if not words:
        return None
    name = words[0].removeprefix("/").lower()
    if name not in BEHAVIOURS:
        return None
    return name, words[1:]


def _int_arg(args: list[str], index: int, default: int, *, low: int = 0, high: int = 10**7) -> int:
    try:
        return max(low, min(high, int(args[index])))
    except (IndexError, ValueError):
        return default


def _float_arg(args: list[str], index: int, default: float) -> float:
    try:
        return max(0.0, min(3600.0, float(args[index])))
    except (IndexError, ValueError):
        return default


def _split_chunks(text: str, n: int) -> list[str]:
    words = text.split(" ")
    n = max(1, min(n, len(words)))
    size = -(-len(words) // n)
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


class _Reject(Exception):
    pass


@attrs.define
class ReferenceAgent:
    """State and handler of the reference agent (one per server).

    Args:
        workspace: the agent's workspace directory (attachments are read from it,
            files are written to ``workspace/out``).
        behaviour: default behaviour for messages that are not ``/commands``.
        chunk_delay_s: pause between the chunks of the echo reply.
    """

    workspace: Path
    behaviour: str | None = None
    chunk_delay_s: float = 0.02
    history: dict[str, list[str]] = attrs.Factory(dict)
    turns_served: int = 0
    active_sessions: int = 0
    #: This instance's process identity, sent in every STATUS.
    boot_id: str = attrs.Factory(lambda: secrets.token_hex(8))
    _skip_status: set[str] = attrs.Factory(set)
    _sessions_changed: trio.Event = attrs.Factory(trio.Event)

    async def wait_idle(self) -> None:
        """Return once no connection is being served (tests: the client hung up)."""
        while self.active_sessions:
            await self._sessions_changed.wait()

    def __attrs_post_init__(self) -> None:
        self.workspace = Path(self.workspace).resolve()
        if self.behaviour is not None and parse_behaviour(self.behaviour) is None:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; known: {BEHAVIOURS}")

    async def handle(self, request: WebSocketRequest) -> None:
        match = AGENT_PATH.match(request.path)
        if match is None:
            log.info("reference_agent_unknown_path", path=request.path)
            await request.reject(404, body=b"unknown path: expected .../v1/agent_ws/{chat_id}/")
            return
        chat_id = match["chat"]
        ws = await request.accept()
        self.active_sessions += 1
        try:
            await self._session(ws, chat_id)
        except ConnectionClosed as exc:
            log.debug("reference_agent_client_closed", chat_id=chat_id, reason=repr(exc.reason))
        except _Reject as exc:
            log.info("reference_agent_bad_request", chat_id=chat_id, error=str(exc))
            await self._send(ws, "ERROR", code="BAD_REQUEST", details=str(exc))
        finally:
            self.active_sessions -= 1
            self._sessions_changed.set()
            self._sessions_changed = trio.Event()

    @staticmethod
    async def _send(ws: WebSocketConnection, ftype: str, **fields: Any) -> None:
        await ws.send_message(json.dumps({"type": ftype, **fields}, ensure_ascii=False))

    async def _text(self, ws: WebSocketConnection, text: str) -> None:
        await self._send(ws, "AGENT_EVENT_TEXT_CHUNK", text=text)

    async def _end(self, ws: WebSocketConnection, tokens: int) -> None:
        await self._send(ws, "AGENT_EVENT_END", tokens_used=tokens)

    async def _receive(self, ws: WebSocketConnection) -> dict[str, Any]:
        raw = await ws.get_message()
        try:
            frame = json.loads(raw)
        except ValueError:
            raise _Reject("frame is not JSON") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise _Reject("frame is not an object with a type")
        return frame

    async def _session(self, ws: WebSocketConnection, chat_id: str) -> None:
        default = parse_behaviour(self.behaviour) if self.behaviour else None
        if (default and default[0] == "no-status") or chat_id in self._skip_status:
            self._skip_status.discard(chat_id)
            while True:  # never ready; wait for the client to give up
                await ws.get_message()
        await self._send(ws, "STATUS", agent="reference", chat_id=chat_id, boot_id=self.boot_id)
        frame = await self._receive(ws)
        if frame["type"] != "USER_MESSAGE":
            raise _Reject(f"expected USER_MESSAGE, got {frame['type']}")
        text, attachments = frame.get("text"), frame.get("attachments", [])
        if not isinstance(text, str):
            raise _Reject("USER_MESSAGE.text must be a string")
        if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
            raise _Reject("USER_MESSAGE.attachments must be a list of strings")

        history = self.history.setdefault(chat_id, [])
        previous = history[-1] if history else None
        history.append(text)
        turn_no = len(history)
        self.turns_served += 1
        if text.startswith(PRIMER_BEGIN):
            await self._primed(ws, text)
            return
        command = parse_behaviour(text) if text.startswith("/") else None
        name, args = command or default or ("echo", [])
        if name == "no-status" and command is None:
            name = "echo"
        log.debug("reference_agent_turn", chat_id=chat_id, turn=turn_no, behaviour=name)
        await self._run(ws, name, args, chat_id, text, attachments, turn_no, previous)

    async def _run(
        self,
        ws: WebSocketConnection,
        name: str,
        args: list[str],
        chat_id: str,
        text: str,
        attachments: list[str],
        turn_no: int,
        previous: str | None,
    ) -> None:
        if name == "echo" or name == "unknown":
            if name == "unknown":
                await self._send(ws, "AGENT_EVENT_FROM_THE_FUTURE", note="ignore me")
            reply = self._echo_text(text, attachments, turn_no, previous)
            for chunk in _split_chunks(reply, 4):
                await self._text(ws, chunk)
                await trio.sleep(self.chunk_delay_s)
            await self._end(ws, len(reply.split()))
        elif name == "instant":
            await self._text(ws, "ok")
            await self._end(ws, 1)
        elif name == "slow":
            delay, n = _float_arg(args, 0, 1.0), _int_arg(args, 1, 5, low=1)
            for i in range(n):
                if i:
                    await trio.sleep(delay)
                await self._text(ws, f"slow {i + 1}/{n} ")
            await self._end(ws, n)
        elif name == "chunks":
            n = _int_arg(args, 0, 10, low=1)
            for i in range(n):
                await self._text(ws, f"chunk {i + 1}/{n}\n")
            await self._end(ws, n)
        elif name in ("long", "big"):
            n = _int_arg(args, 0, 10_000)
            body = ("lorem ipsum dolor sit amet " * (n // 27 + 1))[:n]
            step = 1000 if name == "long" else max(n, 1)
            for i in range(0, n, step):
                await self._text(ws, body[i : i + step])
            await self._end(ws, n // 5)
        elif name == "file":
            await self._send_file(ws, args, chat_id, turn_no)
        elif name == "tools":
            await self._send(
                ws, "AGENT_EVENT_TOOL_CALL_CHUNK", tool="search", arguments='{"q": "trio"}'
            )
            await self._send(ws, "AGENT_EVENT_TOOL_RESULT", tool="search", result="3 hits")
            await self._send(ws, "AGENT_EVENT_CUSTOM_UPDATE", message="summarising")
            await trio.sleep(_float_arg(args, 0, 0.5))  # tools take time
            await self._text(ws, "The tools found 3 hits.")
            await self._end(ws, 6)
        elif name == "dup-end":
            await self._text(ws, "this reply ends twice")
            await self._end(ws, 4)
            await self._end(ws, 4)
        elif name == "error":
            code = args[0] if args else "REFERENCE_ERROR"
            await self._send(ws, "ERROR", code=code, details="scripted failure (/error)")
        elif name == "disconnect":
            await self._text(ws, "about to vanish ")
            await ws.aclose(1011, "scripted disconnect")
        elif name == "graceful":
            await self._send(ws, "GRACEFUL_DISCONNECT")
        elif name == "no-status":
            self._skip_status.add(chat_id)
            await self._text(ws, "The next connection for this chat will get no STATUS.")
            await self._end(ws, 1)
        elif name == "silent":
            while True:
                await ws.get_message()
        elif name == "confirm":
            request_id = f"confirm-{chat_id}-{turn_no}"
            await self._send(
                ws, "AGENT_EVENT_CONFIRM_REQUEST", id=request_id, text="May I proceed?"
            )
            while True:
                frame = await self._receive(ws)
                if frame["type"] == "USER_CONFIRM" and frame.get("id") == request_id:
                    break
            await self._text(ws, "approved" if frame.get("approved") is True else "declined")
            await self._end(ws, 1)
        elif name == "garbage":
            await ws.send_message("this is { not json")
        elif name == "recall":
            reply = self._recall(chat_id)
            await self._text(ws, reply)
            await self._end(ws, len(reply.split()))
        elif name == "help":
            await self._text(ws, "behaviours: " + " ".join("/" + b for b in BEHAVIOURS))
            await self._end(ws, 1)
        else:  # pragma: no cover - BEHAVIOURS and this dispatch are kept in sync
            raise AssertionError(name)

    async def _primed(self, ws: WebSocketConnection, text: str) -> None:
        count = sum(1 for line in text.splitlines() if line.startswith("agent: "))
        await self._text(ws, f"Transcript received: {count} exchanges. I remember them now.")
        await self._end(ws, 8)

    def _recall(self, chat_id: str) -> str:
        """The user's earlier messages of this chat (primer ``user:`` lines expanded),
        the newest ``_RECALL_MAX``; commands and this ``/recall`` left out."""
        said: list[str] = []
        for message in self.history.get(chat_id, [])[:-1]:
            if message.startswith(PRIMER_BEGIN):
                said += [ln[6:] for ln in message.splitlines() if ln.startswith("user: ")]
            elif not message.startswith("/"):
                said.append(message)
        if not said:
            return "I remember nothing of this chat."
        listed = " · ".join(f"«{m}»" for m in said[-_RECALL_MAX:])
        return f"I remember {len(said)} earlier messages: {listed}"

    def _echo_text(
        self, text: str, attachments: list[str], turn_no: int, previous: str | None
    ) -> str:
        parts = [f"Turn {turn_no}. You said: «{text}»."]
        if previous is None:
            parts.append("This is the first message of this chat.")
        else:
            parts.append(f"Previously you said: «{previous}».")
        if attachments:
            described = "; ".join(f"{a} ({self._describe(a)})" for a in attachments)
            parts.append(f"Attachments ({len(attachments)}): {described}.")
        return " ".join(parts)

    def resolve(self, path: str) -> Path | None:
        """Workspace path for ``path``; None if it would leave the workspace."""
        if path == WORKSPACE_MOUNT or path.startswith(WORKSPACE_MOUNT + "/"):
            path = path[len(WORKSPACE_MOUNT) :].lstrip("/")
        if path.startswith("/") or "\x00" in path:
            return None
        resolved = (self.workspace / path).resolve()
        return resolved if resolved.is_relative_to(self.workspace) else None

    def _describe(self, attachment: str) -> str:
        # Small stat calls on the workspace; fine on the event loop for a test agent.
        resolved = self.resolve(attachment)
        if resolved is None:
            return "outside the workspace, refused"
        if not resolved.is_file():
            return "missing"
        return f"{resolved.stat().st_size} bytes"

    async def _send_file(
        self, ws: WebSocketConnection, args: list[str], chat_id: str, turn_no: int
    ) -> None:
        name = args[0] if args else "reference.txt"
        if not _SAFE_NAME.match(name):
            await self._send(ws, "ERROR", code="BAD_FILE_NAME", details=f"bad name {name!r}")
            return
        content = " ".join(args[1:]) or f"Reference agent file for chat {chat_id}, turn {turn_no}."
        out = trio.Path(self.workspace / "out")
        await out.mkdir(parents=True, exist_ok=True)
        await (out / name).write_text(content + "\n", encoding="utf-8")
        await self._send(ws, "AGENT_EVENT_SEND_FILE", path=f"{WORKSPACE_MOUNT}/out/{name}")
        await self._text(ws, f"Here is {name}.")
        await self._end(ws, 3)


async def serve_reference_agent(
    host: str,
    port: int,
    workspace: Path,
    *,
    behaviour: str | None = None,
    chunk_delay_s: float = 0.02,
    agent: ReferenceAgent | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the reference agent until cancelled; ``nursery.start`` gives the port.

    ``port=0`` picks a free port. Pass ``agent`` to share/inspect state (tests).
    """
    if agent is None:
        agent = ReferenceAgent(Path(workspace), behaviour=behaviour, chunk_delay_s=chunk_delay_s)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, agent.handle, host, port, None)
        log.info("reference_agent_listening", host=host, port=server.port)
        task_status.started(server.port)
