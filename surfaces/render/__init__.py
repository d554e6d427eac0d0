"""Reply rendering building blocks: Markdown -> Matrix HTML, size splitting, edit
throttle, progress lines. Pure and synchronous; the turn pipeline drives them."""

from ._markdown import ALLOWED_TAGS, ALLOWED_URL_SCHEMES, render_markdown
from ._progress import MAX_PROGRESS_CHARS, progress_line
from ._split import (
    MATRIX_EVENT_LIMIT_BYTES,
    MAX_CHAR_COST,
    PART_BUDGET_BYTES,
    json_size,
    split_reply,
)
from ._throttle import EditThrottle

__all__ = [
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "MATRIX_EVENT_LIMIT_BYTES",
    "MAX_CHAR_COST",
    "MAX_PROGRESS_CHARS",
    "PART_BUDGET_BYTES",
    "EditThrottle",
    "json_size",
    "progress_line",
    "render_markdown",
    "split_reply",
]
