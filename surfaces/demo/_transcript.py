"""The demo's readable output: numbered steps, each ending with ✓ or ✗."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import attrs
import trio

#: Every scripted step must finish within this (seconds).
STEP_DEADLINE_S = 30.0
#: Longest piece of a message the transcript shows.
SHOW_CHARS = 160


class StepFailed(Exception):
    """A scripted step could not complete; the message says why."""


@attrs.define
class Transcript:
    """Numbered steps with ✓/✗ and indented details, printed as they happen."""

    out: TextIO
    results: list[tuple[str, bool, str]] = attrs.Factory(list)
    _n: int = 0

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def detail(self, text: str) -> None:
        for i, row in enumerate(text.splitlines() or [""]):
            self.line(("    " if i == 0 else "      ") + row)

    @contextmanager
    def step(self, title: str, deadline_s: float = STEP_DEADLINE_S) -> Iterator[None]:
        """One step: a header, its details, then ✓ or ✗ (deadline, error).

        Any failure becomes :class:`StepFailed` carrying the step's title, so the
        caller can name the step that stopped the script.
        """
        self._n += 1
        label = f"[{self._n}] {title}"
        self.line(f"→ {label}")
        began = time.monotonic()
        try:
            with trio.fail_after(deadline_s):
                yield
        except trio.TooSlowError:
            self._fail(label, title, f"no result within {deadline_s:g} s")
            raise StepFailed(title) from None
        except StepFailed as exc:
            self._fail(label, title, str(exc))
            raise StepFailed(title) from None
        except Exception as exc:  # shown in the transcript, then the script stops
            self._fail(label, title, f"{type(exc).__name__}: {exc}")
            raise StepFailed(title) from exc
        elapsed = time.monotonic() - began
        self.results.append((title, True, ""))
        self.line(f"  ✓ {label} ({elapsed:.1f} s)")

    def _fail(self, label: str, title: str, reason: str) -> None:
        self.results.append((title, False, reason))
        self.line(f"  ✗ {label}: {reason}")


def short(text: str, limit: int = SHOW_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
