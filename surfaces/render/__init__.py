"""Rendering both ways: reply building blocks (Markdown -> Matrix HTML, size splitting
and fitting a bot text into a bounded number of parts, edit throttle, progress lines)
and incoming messages as plain text (reply fallbacks stripped, HTML to text, relations
read). Pure and synchronous; the turn pipeline drives them."""

from ._fit import clip, fit_parts
from ._incoming import (
    ANNOTATION,
    REPLACE,
    THREAD,
    Relation,
    html_to_text,
    latest_content,
    message_text,
    relation_of,
    strip_reply_fallback,
)
from ._markdown import ALLOWED_TAGS, ALLOWED_URL_SCHEMES, render_markdown
from ._progress import MAX_PROGRESS_CHARS, progress_line
from ._split import (
    MATRIX_EVENT_LIMIT_BYTES,
    MAX_CHAR_COST,
    MAX_FENCE_LINE_CHARS,
    PART_BUDGET_BYTES,
    STEP_CHARS,
    json_size,
    split_reply,
)
from ._stream_split import ReplySplitter
from ._throttle import EditThrottle

__all__ = [
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "ANNOTATION",
    "MATRIX_EVENT_LIMIT_BYTES",
    "MAX_CHAR_COST",
    "MAX_FENCE_LINE_CHARS",
    "MAX_PROGRESS_CHARS",
    "PART_BUDGET_BYTES",
    "REPLACE",
    "STEP_CHARS",
    "THREAD",
    "EditThrottle",
    "Relation",
    "ReplySplitter",
    "clip",
    "fit_parts",
    "html_to_text",
    "json_size",
    "latest_content",
    "message_text",
    "progress_line",
    "relation_of",
    "render_markdown",
    "split_reply",
    "strip_reply_fallback",
]
