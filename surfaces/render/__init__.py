"""Rendering both ways: reply building blocks (Markdown -> Matrix HTML, size
splitting, edit throttle, progress lines) and incoming messages as plain text (reply
fallbacks stripped, HTML to text, relations read). Pure and synchronous."""

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
    PART_BUDGET_BYTES,
    json_size,
    split_reply,
)
from ._throttle import EditThrottle

__all__ = [
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "ANNOTATION",
    "MATRIX_EVENT_LIMIT_BYTES",
    "MAX_CHAR_COST",
    "MAX_PROGRESS_CHARS",
    "PART_BUDGET_BYTES",
    "REPLACE",
    "THREAD",
    "EditThrottle",
    "Relation",
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
