"""The doctor's checklist: one :class:`Check` per line, its status, and its rendering.

Shared by ``surfaces doctor`` and the checks of local files (``_local_checks``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs


class Status(enum.StrEnum):
    """How a check came out. A ``str``: JSON and comparisons with text work as is."""

    OK = "ok"  # ✓
    WARN = "warn"  # !  works, but look at it
    FAIL = "fail"  # ✗  with a one-line fix
    SKIP = "skip"  # -  what it needs failed


OK, WARN, FAIL, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.SKIP
MARKS = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}


@attrs.frozen
class Check:
    """One line of the checklist."""

    name: str
    status: Status
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "details": dict(self.details),
        }


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def render_text(checks: Sequence[Check], *, title: str = "surfaces doctor") -> str:
    lines = [title]
    for c in checks:
        lines.append(f"{MARKS[c.status]} {c.name}: {c.summary}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"    fix: {c.fix}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in Status}
    lines.append(
        f"{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failed, {counts[SKIP]} skipped"
    )
    return "\n".join(lines)


def render_json(checks: Sequence[Check], **extra: Any) -> str:
    return json.dumps(
        {**extra, "ok": not failed(checks), "checks": [c.as_dict() for c in checks]},
        indent=2,
        ensure_ascii=False,
    )
