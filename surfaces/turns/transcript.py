"""What a turn adds to the chat's transcript: the words it sent, the agent's final
reply text and the names of the files in and out — gathered while the turn runs, in
bounded memory, and handed to the turn's final transaction (``Store.finish_event``).

Only names of files are kept (never paths or contents); each text is cut to
``context.entry_max_chars``. The conversation key is ``''`` for the room and the
thread root for a thread that is its own conversation (it has a platform chat id of
its own, ``surfaces.workspaces.threads``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import PurePosixPath

import attrs

from surfaces.config import ContextConfig
from surfaces.core import clean_text
from surfaces.state import ChatRecord, TranscriptBounds, TranscriptEntry, TranscriptWrite

#: File names kept per side of an exchange, and the characters of each.
MAX_FILES = 20
MAX_FILE_NAME_CHARS = 200


def cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def file_name(path: str) -> str:
    return clean_text(cut(PurePosixPath(path).name or path, MAX_FILE_NAME_CHARS))


def conversation_of(chat: ChatRecord, thread: str | None, platform_chat_id: str) -> str:
    """``''`` (the room) unless the turn runs in a thread with a conversation of its own."""
    return thread if thread and platform_chat_id != chat.platform_chat_id else ""


@attrs.define
class TurnNotes:
    """The agent's side of one exchange, collected chunk by chunk (bounded)."""

    max_chars: int
    _chunks: list[str] = attrs.Factory(list)
    _chars: int = 0
    files_out: list[str] = attrs.Factory(list)

    def text(self, chunk: str) -> None:
        room = self.max_chars - self._chars
        if room <= 0:
            return
        piece = chunk[: room + 1]  # one more than fits: ``cut`` then marks the cut
        self._chunks.append(piece)
        self._chars += len(piece)

    def file(self, path: str) -> None:
        if len(self.files_out) < MAX_FILES:
            self.files_out.append(file_name(path))

    @property
    def agent_text(self) -> str:
        # Lone surrogates (valid JSON escapes, not Unicode) could not be stored as UTF-8.
        return clean_text(cut("".join(self._chunks), self.max_chars))


def transcript_write(
    config: ContextConfig,
    *,
    turn_id: str,
    chat: ChatRecord,
    conversation: str,
    words: Iterable[str],
    files_in: Iterable[str],
    notes: TurnNotes,
) -> TranscriptWrite:
    """The turn's entry, bounded, with the conversation's bounds for the trim."""
    user = clean_text(cut("\n\n".join(w for w in words if w), config.entry_max_chars))
    entry = TranscriptEntry(
        turn_id=turn_id,
        room_id=chat.room_id,
        conversation=conversation,
        user_text=user,
        agent_text=notes.agent_text,
        files_in=tuple(file_name(f) for f in files_in)[:MAX_FILES],
        files_out=tuple(notes.files_out),
        at=time.time(),
    )
    return TranscriptWrite(
        entry, TranscriptBounds(config.transcript_max_entries, config.transcript_max_bytes)
    )
