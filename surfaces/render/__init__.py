"""Reply rendering building blocks: Markdown -> Matrix HTML, size splitting (and fitting
a bot text into a bounded number of parts), edit throttle, progress lines. Pure and
synchronous; the turn pipeline drives them."""

from ._fit import clip, fit_parts
from ._markdown import ALLOWED_TAGS, ALLOWED_URL_SCHEMES, render_markdown
from ._progress import MAX_PROGRESS_CHARS, progress_line
from ._split import (
    MATRIX_EVENT_LIMIT_BYTES,
    MAX_CHAR_COST,
    MAX_FENCE_LINE_CHARS,
    PART_BUDGET_BYTES,
    STEP_CHARS,
    ReplySplitter,
    json_size,
    split_reply,
)
from ._throttle import EditThrottle

__all__ = [
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "MATRIX_EVENT_LIMIT_BYTES",
    "MAX_CHAR_COST",
    "MAX_FENCE_LINE_CHARS",
    "MAX_PROGRESS_CHARS",
    "PART_BUDGET_BYTES",
    "STEP_CHARS",
    "EditThrottle",
    "ReplySplitter",
    "clip",
    "fit_parts",
    "json_size",
    "progress_line",
    "render_markdown",
    "split_reply",
]
