"""Parsing: the converter, error responses, Retry-After, timeouts on the wire."""

from __future__ import annotations

import datetime
import email.utils
from typing import Any

import httpx
import pytest
import trio

from matrix_client import (
    MatrixClient,
    MatrixError,
    RateLimitedError,
    ResponseFormatError,
    SyncResponse,
    UnknownTokenError,
    Versions,
)
from matrix_client._client import error_from_response
from matrix_client._converter import structure


def test_room_event_fields_and_v11_redacts() -> None:
    raw = {
        "next_batch": "s1",
        "rooms": {"join": {"!r:x": {"timeline": {"events": [
            {"event_id": "$r", "type": "m.room.redaction", "sender": "@a:x",
             "origin_server_ts": 5, "content": {"redacts": "$t"}, "unsigned": {"age": 1}},
            {"event_id": "$s", "type": "m.room.name", "sender": "@a:x", "state_key": "",
             "content": {"name": "n"}, "origin_server_ts": "bad"},
        ]}}}},
    }  # fmt: skip
    response = structure(raw, SyncResponse, what="sync")
    redaction, name = response.rooms.join["!r:x"].timeline.events
    assert redaction.redacts == "$t"
    assert redaction.unsigned == {"age": 1}
    assert redaction.state_key is None
    assert name.state_key == ""
    assert name.origin_server_ts == 0


def test_missing_next_batch_is_a_response_format_error() -> None:
    with pytest.raises(ResponseFormatError):
        structure({"rooms": {}}, SyncResponse, what="sync")


def _response(status: int, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://x/"), **kwargs)


def test_error_classes_from_responses() -> None:
    proxy = error_from_response(_response(502, content=b"<html>Bad Gateway</html>"))
    assert type(proxy) is MatrixError
    assert (proxy.status, proxy.errcode, proxy.message) == (502, None, "Bad Gateway")
    dead = error_from_response(_response(401, json={"errcode": "M_UNKNOWN_TOKEN", "error": "x"}))
    assert isinstance(dead, UnknownTokenError)
    assert dead.soft_logout is False
    limited = error_from_response(
        _response(429, json={"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500})
    )
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after_s == 1.5
    assert "429 M_LIMIT_EXCEEDED" in str(limited)


def test_retry_after_header_wins_and_http_dates_work() -> None:
    both = _response(
        429, headers={"Retry-After": "4"}, json={"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 9}
    )
    assert error_from_response(both).retry_after_s == 4.0
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120)
    dated = _response(429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    wait = error_from_response(dated).retry_after_s
    assert wait is not None
    assert 100 < wait <= 120


async def test_sync_request_carries_long_poll_read_timeout(autojump_clock: trio.abc.Clock) -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"next_batch": "s1"})

    transport = httpx.MockTransport(handler)
    async with MatrixClient(
        "https://hs.example/", access_token="secret", transport=transport, sync_http_margin_s=7
    ) as client:
        await client.sync(since="s0", timeout_ms=30_000)
    assert seen[0]["read"] == pytest.approx(37.0)
    assert "secret" not in repr(client)


def test_versions_at_least_compares_spec_versions() -> None:
    versions = Versions(versions=["r0.6.1", "v1.1", "v1.9", "v1.12", "vx.y", "v2"])
    assert versions.at_least("v1.11")
    assert versions.at_least("v1.12")
    assert not versions.at_least("v1.13")
    assert not Versions(versions=["r0.6.1", "v1.10", "v1.9"]).at_least("v1.11")
    assert not Versions().at_least("v1.11")
    with pytest.raises(ValueError, match="not a spec version"):
        versions.at_least("1.11")
