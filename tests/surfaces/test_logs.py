"""Logging: JSON/console output, context binding, stdlib routing, secrets never rendered."""

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import structlog

from surfaces import logs
from surfaces.config import Secret
from surfaces.logs import _TEXT_PATTERNS, _is_secret_key, configure_logging, mask_secrets, mask_text

REPO = Path(__file__).resolve().parents[2]

SECRETS = ["syt_c2VjcmV0_abcdefghij_123", "hunter2pass", "s3cr3t-shared", "qwerty-token"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    excepthook = sys.excepthook
    yield
    sys.excepthook = excepthook
    logging.captureWarnings(False)
    while logs._leveled:
        logs._leveled.pop().setLevel(logging.NOTSET)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _fail(message: str) -> None:
    raise RuntimeError(message)


def emit_everything() -> None:
    log = structlog.get_logger("surfaces.test")
    log.info(
        "matrix_login",
        access_token=SECRETS[0],
        password=SECRETS[1],
        registration_shared_secret=SECRETS[2],
        Authorization=f"Bearer {SECRETS[3]}",
        headers={"authorization": f"Bearer {SECRETS[3]}", "accept": "json"},
        nested=[{"refresh_token": SECRETS[0]}],
        secret_obj=Secret(SECRETS[1]),
        tokens_used=42,
    )
    log.warning(f"request failed: GET /sync?access_token={SECRETS[0]}&since=s1")
    log.warning("login_body", body=f'{{"type": "m.login.password", "password": "{SECRETS[1]}"}}')
    log.warning("url", url=f"https://bot:{SECRETS[1]}@matrix.example.org/")
    logging.getLogger("httpx").warning("HTTP Request: POST /login Bearer %s", SECRETS[3])
    try:
        _fail(f"token was {SECRETS[0]}")
    except RuntimeError:
        log.exception("crashed", password=SECRETS[1])


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secrets_never_rendered(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt, "debug", stream=stream)
    emit_everything()
    output = stream.getvalue()
    assert "matrix_login" in output
    assert "crashed" in output
    assert "RuntimeError" in output
    assert "HTTP Request" in output
    for secret in SECRETS:
        assert secret not in output, (secret, output)
    assert "***" in output


def test_json_lines_have_level_timestamp_and_context() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    structlog.contextvars.bind_contextvars(room_id="!r:x", chat_id="c1")
    structlog.get_logger("t").info("turn_started", event_id="$e", tokens_used=3)
    structlog.get_logger("t").debug("hidden_debug")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "turn_started"
    assert record["level"] == "info"
    assert record["room_id"] == "!r:x"
    assert record["chat_id"] == "c1"
    assert record["event_id"] == "$e"
    assert record["tokens_used"] == 3  # not a secret despite the word "token"
    assert record["timestamp"].endswith("Z")


def test_stdlib_loggers_routed_at_warning() -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: GET /versions")
    logging.getLogger("trio-websocket").warning("connection reset")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record == {
        "event": "connection reset",
        "logger": "trio-websocket",
        "level": "warning",
        "timestamp": record["timestamp"],
    }


def test_configure_twice_does_not_duplicate_output() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    configure_logging("console", "warning", stream=second)
    logging.getLogger("httpx").error("boom")
    structlog.get_logger("t").info("quiet")
    structlog.get_logger("t").warning("loud")
    assert first.getvalue() == ""
    out = second.getvalue()
    assert out.count("boom") == 1
    assert "quiet" not in out
    assert "loud" in out


def test_default_stream_is_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console", "info")
    structlog.get_logger("t").info("hello", password="pw-123")
    err = capsys.readouterr().err
    assert "hello" in err
    assert "pw-123" not in err


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_our_lines_name_their_logger() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    structlog.get_logger("matrix_client._sync").info("sync_ok")
    structlog.get_logger().info("anonymous")
    named, anonymous = records(stream)
    assert named["logger"] == "matrix_client._sync"
    assert "logger" not in anonymous


def test_per_logger_levels_for_structlog_and_stdlib_loggers() -> None:
    stream = io.StringIO()
    configure_logging(
        "json",
        "info",
        levels={"matrix_client": "debug", "matrix_client._sync": "warning", "httpx": "debug"},
        stream=stream,
    )
    structlog.get_logger("matrix_client._client").debug("shown_prefix")
    structlog.get_logger("matrix_client").debug("shown_exact")
    structlog.get_logger("matrix_client._sync").info("hidden_longer_prefix_wins")
    structlog.get_logger("matrix_client._sync").warning("shown_warning")
    structlog.get_logger("matrix_clientele").debug("hidden_not_a_dotted_prefix")
    structlog.get_logger("surfaces.bot").debug("hidden_default_level")
    structlog.get_logger("surfaces.bot").info("shown_default_level")
    logging.getLogger("httpx").debug("shown_httpx")
    logging.getLogger("httpx._client").debug("shown_httpx_child")
    logging.getLogger("trio-websocket").info("hidden_stdlib_default")
    assert [r["event"] for r in records(stream)] == [
        "shown_prefix",
        "shown_exact",
        "shown_warning",
        "shown_default_level",
        "shown_httpx",
        "shown_httpx_child",
    ]


def test_a_logger_can_be_quieter_than_the_default() -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", levels={"surfaces.noisy": "error"}, stream=stream)
    structlog.get_logger("surfaces.noisy").warning("hidden")
    structlog.get_logger("surfaces.noisy.child").error("shown_error")
    structlog.get_logger("surfaces.other").debug("shown_debug")
    assert [r["event"] for r in records(stream)] == ["shown_error", "shown_debug"]


def test_reconfiguring_forgets_per_logger_levels() -> None:
    configure_logging("json", "info", levels={"httpx": "debug"}, stream=io.StringIO())
    assert logging.getLogger("httpx").level == logging.DEBUG
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    assert logging.getLogger("httpx").level == logging.NOTSET
    logging.getLogger("httpx").info("hidden")
    structlog.get_logger("matrix_client").debug("hidden too")
    assert stream.getvalue() == ""


def _nested_failure(depth: int) -> None:
    if depth == 0:
        raise ValueError(f"deep access_token={SECRETS[0]}")
    try:
        _nested_failure(depth - 1)
    except Exception as exc:
        raise ExceptionGroup(f"level {depth}", [exc])


def test_json_tracebacks_are_structured_and_masked() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger("surfaces.test")
    try:
        _fail(f"token was {SECRETS[0]}")
    except RuntimeError:
        log.exception("crashed", password=SECRETS[1])
    try:
        _nested_failure(6)  # trio nests exception groups like this
    except ExceptionGroup:
        log.exception("group_crashed")
    try:
        _fail("from the stdlib side")
    except RuntimeError:
        logging.getLogger("trio-websocket").exception("stdlib_crashed")
    output = stream.getvalue()
    crashed, group, stdlib = records(stream)  # one JSON object per line, nothing else
    (exc,) = crashed["exception"]
    assert exc["exc_type"] == "RuntimeError"
    assert exc["exc_value"] == "token was ***"
    assert exc["frames"][-1]["name"] == "_fail"
    assert set(exc["frames"][-1]) == {"filename", "lineno", "name"}  # no locals
    assert group["exception"][0]["is_group"] is True
    assert "deep access_token=***" in json.dumps(group)
    assert stdlib["exception"][0]["exc_value"] == "from the stdlib side"
    for secret in SECRETS:
        assert secret not in output


def test_uncaught_exception_is_a_json_line_in_json_mode() -> None:
    code = (
        "from surfaces.logs import configure_logging\n"
        "import warnings\n"
        "configure_logging('json', 'info')\n"
        "warnings.warn('deprecated thing')\n"
        f"raise RuntimeError('boom password={SECRETS[1]}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    warning, crash = lines
    assert warning["logger"] == "py.warnings"
    assert "deprecated thing" in warning["event"]
    assert crash["event"] == "uncaught_exception"
    assert crash["level"] == "critical"
    assert crash["exception"][0]["exc_value"] == "boom password=***"
    assert SECRETS[1] not in result.stderr


def test_console_mode_keeps_the_interpreters_excepthook() -> None:
    configure_logging("json", "info", stream=io.StringIO())
    assert sys.excepthook is not sys.__excepthook__
    configure_logging("console", "info", stream=io.StringIO())
    assert sys.excepthook is logs._original_excepthook


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "info", levels={"httpx": "loud"})
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("GET /x?access_token=abc&y=1", "GET /x?access_token=***&y=1"),
        ("password=pw user=bob", "password=*** user=bob"),
        (
            '{"access_token": "abc", "user_id": "@b:x"}',
            '{"access_token": "***", "user_id": "@b:x"}',
        ),
        ("token syt_Ym90_abcdefghij_0aBc1 ok", "token *** ok"),
        ("https://u:pw@h/x", "https://u:***@h/x"),
        ("nothing secret here: tokens_used=5", "nothing secret here: tokens_used=5"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_mask_secrets_processor_keys() -> None:
    event = {
        "event": "x",
        "access_token": "a",
        "client-secret": "b",
        "api_key": "c",
        "password": None,
        "next_batch": "s1",
        "state_key": "",
        "tokens_used": 3,
    }
    assert mask_secrets(None, "info", event) == {
        "event": "x",
        "access_token": "***",
        "client-secret": "***",
        "api_key": "***",
        "password": None,
        "next_batch": "s1",
        "state_key": "",
        "tokens_used": 3,
    }


# --- fast paths (pre-check before the regexes, memoised key test, no needless copies) ---


def _mask_text_slow(text: str) -> str:
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_FRAGMENTS = [
    "",
    "ok",
    "x",
    " ",
    "=",
    '"',
    ":",
    "@",
    "/",
    "://",
    "https://",
    "u:pw@",
    "Bearer",
    "bearer ",
    "BEARER abc",
    "Basic ",
    "basic",
    "token",
    "TOKEN",
    "Access_Token",
    "tokens_used",
    "passwd",
    "PassWord",
    "secret",
    "client-secret",
    "syt_",
    "syr_abcdefgh12",
    "syt_Ym90_abcdefghij_0aBc1",
    "abc",
    "\u017f",  # long s: re.IGNORECASE matches it as "s"
    "pa\u017f\u017fword",
    "to\u212aen",  # Kelvin sign: re.IGNORECASE matches it as "k"
    "é",
]


def test_mask_text_pre_check_never_skips_a_match() -> None:
    # Every ordered pair and many triples of fragments: the fast path must give exactly
    # what running all five patterns gives.
    for a in _FRAGMENTS:
        for b in _FRAGMENTS:
            for text in (a + b, a + "=" + b, f'"{a}": "{b}"', a + " " + b, a + b + "=v"):
                assert mask_text(text) == _mask_text_slow(text), text
            for c in ("x", "=secret1", "@h/x", '": "v"', " abc.def"):
                text = a + b + c
                assert mask_text(text) == _mask_text_slow(text), text


@pytest.mark.parametrize(
    "text",
    ["Bearer x", "paſſword=hunter2", "to\u212aen=abc", "Basic x", "a://:x@", '"token":"v'],
)
def test_mask_text_short_and_unicode_secrets_still_masked(text: str) -> None:
    assert mask_text(text) != text
    assert mask_text(text) == _mask_text_slow(text)


def test_mask_text_returns_clean_text_itself() -> None:
    text = "2025-01-01T12:00:00.000000Z room:!abc:example.org turn_finished"
    assert mask_text(text) is text


def test_mask_secrets_nested_and_no_needless_copies() -> None:
    clean = {"a": [1, "two", ("three", {"four": 4.0})], "tokens_used": 7, "b": None}
    dirty = {"headers": {"Authorization": "Basic abc", "accept": "json"}, "ok": "fine"}
    items = ["Bearer x", {"refresh_token": "r"}, "plain"]
    event = {
        "event": "e",
        "clean": clean,
        "dirty": dirty,
        "items": items,
        "note": "sent with Bearer x",
        "tokens_used": 3,
        "password": 1234,
        "api_key": None,
    }
    out = mask_secrets(None, "info", event)
    assert out["clean"] is clean  # nothing to mask: not copied
    assert out["dirty"] == {"headers": {"Authorization": "***", "accept": "json"}, "ok": "fine"}
    assert dirty["headers"]["Authorization"] == "Basic abc"  # the caller's dict untouched
    assert out["items"] == ["Bearer ***", {"refresh_token": "***"}, "plain"]
    assert items[0] == "Bearer x"
    assert out["note"] == "sent with Bearer ***"
    assert out["tokens_used"] == 3
    assert out["password"] == "***"
    assert out["api_key"] is None


def test_mask_secrets_keeps_container_types() -> None:
    class Pair(NamedTuple):
        name: str
        value: str

    out = mask_secrets(None, "info", {"pair": Pair("t", "Bearer x"), "tup": ("a", "b")})
    assert out["pair"] == ("t", "Bearer ***")
    assert type(out["pair"]) is tuple
    assert out["tup"] == ("a", "b")


def test_secret_key_memo_is_bounded() -> None:
    assert _is_secret_key("X-Api-Token") is True
    assert _is_secret_key("tokens_used") is False
    assert _is_secret_key.cache_info().maxsize is not None
