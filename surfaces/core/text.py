"""Text hygiene for anything that came from Matrix and goes on to an agent or a log."""

from __future__ import annotations

#: A message's text is cut to this many characters before it goes to an agent (intake
#: cuts, the turn tells the user): agents' frames and contexts are bounded.
MAX_BODY_CHARS = 32_000


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates (valid ``\\ud800`` JSON escapes, invalid
    Unicode) with U+FFFD: they cannot be encoded as UTF-8 for the agent's frames."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
