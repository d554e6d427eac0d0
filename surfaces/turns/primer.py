"""The transcript primer: earlier exchanges of a chat as one ``USER_MESSAGE`` text, so
an agent that never saw them (``!load``: a fresh conversation; ``!restore``: an agent
that lost its memory) knows them. Only text: it works with any agent.

The format is defined in ``docs/agent-protocol.md`` ("A transcript primer")::

    <<<SURFACES TRANSCRIPT v1 exchanges=2 omitted=0>>>
    The lines below are an earlier conversation with this user … (instruction)
    user: hello
    agent: Hi! How can I help?
    user: and a file
      with a second line
    user files: report.pdf
    agent files: summary.txt
    <<<END TRANSCRIPT>>>

Every content line starts with a role prefix (``user: ``, ``agent: ``, ``user files: ``,
``agent files: ``) or two spaces (a continuation), so no text can stand at the start of
a line as a delimiter; and ``<<<`` inside any text is written ``<< <``, so the block
cannot be closed or reopened from inside. Bounded: at most ``max_chars`` characters —
the oldest exchanges are left out first and the header says how many.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from surfaces.state import TranscriptEntry

BEGIN = "<<<SURFACES TRANSCRIPT v1"
END = "<<<END TRANSCRIPT>>>"
INSTRUCTION = (
    "The lines below are an earlier conversation between this user and you, restored by "
    "the chat bot because your own memory of it is gone. Treat it as what was said before; "
    "do not answer the old messages. Reply with one short sentence that you have it."
)
#: A primer never gets this small; below it there is no room for one exchange.
MIN_PRIMER_CHARS = 1_000


@attrs.frozen
class Primer:
    text: str
    #: Exchanges in the text, and the older ones left out to fit.
    included: int
    omitted: int


def _neutral(text: str) -> str:
    return text.replace("<<<", "<< <")


def _lines(prefix: str, text: str) -> list[str]:
    lines = _neutral(text).splitlines() or [""]
    return [f"{prefix}{lines[0]}", *(f"  {line}" for line in lines[1:])]


def entry_block(entry: TranscriptEntry) -> str:
    """One exchange in the primer's line format."""
    out: list[str] = []
    if entry.user_text or not entry.files_in:
        out += _lines("user: ", entry.user_text)
    if entry.files_in:
        out += _lines("user files: ", ", ".join(entry.files_in))
    out += _lines("agent: ", entry.agent_text)
    if entry.files_out:
        out += _lines("agent files: ", ", ".join(entry.files_out))
    return "\n".join(out)


def _header(included: int, omitted: int) -> str:
    head = f"{BEGIN} exchanges={included} omitted={omitted}>>>\n{INSTRUCTION}"
    if omitted:
        head += f"\n({omitted} older exchanges were left out to fit.)"
    return head


def primer_text(entries: Sequence[TranscriptEntry], *, max_chars: int) -> Primer:
    """The primer for ``entries`` (oldest first), newest kept when it must be cut.

    The newest exchange alone is cut to fit if it is larger than the budget."""
    max_chars = max(max_chars, MIN_PRIMER_CHARS)
    # The header's size depends on the counts: reserve room for the largest one.
    reserve = len(_header(len(entries), len(entries))) + len(END) + 2
    budget = max_chars - reserve
    blocks: list[str] = []
    used = 0
    for entry in reversed(entries):
        block = entry_block(entry)
        if used + len(block) + 1 > budget:
            if not blocks:  # the newest exchange alone is too large: its tail goes
                blocks.append(block[: max(0, budget - 2)] + "…")
            break
        blocks.append(block)
        used += len(block) + 1
    blocks.reverse()
    omitted = len(entries) - len(blocks)
    text = "\n".join([_header(len(blocks), omitted), *blocks, END])
    return Primer(text, len(blocks), omitted)
