"""What a turn adds to the transcript (surfaces/turns/transcript.py): bounded texts,
names of files only, the conversation key."""

from __future__ import annotations

from surfaces.config import ContextConfig
from surfaces.core import ChatStatus
from surfaces.state import ChatRecord
from surfaces.turns.transcript import (
    MAX_FILE_NAME_CHARS,
    MAX_FILES,
    TurnNotes,
    conversation_of,
    transcript_write,
)

CHAT = ChatRecord("!r", "@a:x", "C1", "C1", "agent-0", "7", ChatStatus.ACTIVE, {})


def test_agent_text_is_bounded_while_it_streams():
    notes = TurnNotes(max_chars=10)
    for _ in range(1000):
        notes.text("abcdef")
    assert notes.agent_text == "abcdefabc…"
    assert sum(len(c) for c in notes._chunks) <= 11


def test_short_text_is_kept_whole():
    notes = TurnNotes(max_chars=10)
    notes.text("0123456789")
    assert notes.agent_text == "0123456789"


def test_only_file_names_are_kept_bounded():
    notes = TurnNotes(max_chars=10)
    for n in range(MAX_FILES + 5):
        notes.file(f"/workspace/out/f{n}.txt")
    assert notes.files_out[0] == "f0.txt"
    assert len(notes.files_out) == MAX_FILES
    write = transcript_write(
        ContextConfig(entry_max_chars=100),
        turn_id="$t",
        chat=CHAT,
        conversation="",
        words=["a", "", "b" * 200],
        files_in=["incoming/report.pdf", "incoming/" + "n" * 500],
        notes=notes,
    )
    assert write.entry.user_text == "a\n\n" + "b" * 96 + "…"
    assert write.entry.files_in[0] == "report.pdf"
    assert len(write.entry.files_in[1]) == MAX_FILE_NAME_CHARS
    assert write.bounds.max_entries == ContextConfig().transcript_max_entries


def test_conversation_is_the_thread_only_when_it_has_its_own_agent_chat():
    assert conversation_of(CHAT, None, "7") == ""
    assert conversation_of(CHAT, "$root", "7") == ""  # bot.thread_context: room
    assert conversation_of(CHAT, "$root", "12") == "$root"


def test_lone_surrogates_are_replaced_so_the_entry_can_be_stored():
    notes = TurnNotes(max_chars=100)
    notes.text("odd \ud800 text")
    notes.file("/workspace/out/\udc00.txt")
    write = transcript_write(
        ContextConfig(),
        turn_id="$t",
        chat=CHAT,
        conversation="",
        words=["user \ud800"],
        files_in=["incoming/\ud800.pdf"],
        notes=notes,
    )
    assert write.entry.agent_text == "odd \ufffd text"
    assert write.entry.user_text == "user \ufffd"
    assert write.entry.files_in == ("\ufffd.pdf",)
    assert write.entry.files_out == ("\ufffd.txt",)
    assert write.entry.size > 0  # encodes as UTF-8
