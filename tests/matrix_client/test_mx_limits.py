"""Sizes are input: capped, streamed response bodies and streamed uploads."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from matrix_client import (
    MatrixClient,
    MatrixError,
    MediaTooLargeError,
    RateLimitedError,
    ResponseTooLargeError,
    RetryPolicy,
)
from matrix_client.testing import FakeHomeserver, FakeUser, Fault

MB = 1_000_000
CHUNK = 65_536


class CountingStream(httpx.AsyncByteStream):
    """A body of ``total`` bytes made on demand, counting what was pulled from it."""

    def __init__(self, total: int, *, chunk: int = CHUNK, data: bytes | None = None) -> None:
        self.data = data
        self.total = total if data is None else len(data)
        self.chunk = chunk
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            n = min(self.chunk, self.total - self.pulled)
            part = b"x" * n if self.data is None else self.data[self.pulled : self.pulled + n]
            self.pulled += n
            yield part

    async def aclose(self) -> None:
        self.closed = True


def serving(hs: FakeHomeserver, stream: CountingStream, headers: dict[str, str]) -> MatrixClient:
    """A bot client whose media downloads are answered with ``stream``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if "/media/download/" in request.url.path:
            return httpx.Response(200, headers=headers, stream=stream)
        return await hs.handle(request)

    user = hs._user("@bot:test.local")
    return MatrixClient(
        hs.base_url,
        access_token=user.access_token,
        user_id=user.user_id,
        transport=httpx.MockTransport(handler),
    )


MXC = "mxc://test.local/media1"


async def test_download_of_20_mb_under_a_1000_byte_cap_reads_one_chunk(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    stream = CountingStream(20 * MB)
    async with serving(hs, stream, {"content-type": "application/pdf"}) as client:
        with pytest.raises(MediaTooLargeError) as caught:
            await client.download(MXC, max_bytes=1_000)
    assert (caught.value.limit, caught.value.seen_at_least) == (1_000, CHUNK)
    assert stream.pulled <= 1_001 + CHUNK  # the cap + 1, plus the chunk that crossed it
    assert stream.closed


async def test_declared_length_over_the_cap_is_refused_before_reading(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    stream = CountingStream(20 * MB)
    headers = {"content-type": "application/pdf", "content-length": str(20 * MB)}
    async with serving(hs, stream, headers) as client:
        with pytest.raises(MediaTooLargeError) as caught:
            await client.download(MXC, max_bytes=1_000)
        with pytest.raises(MediaTooLargeError):
            async with client.download_stream(MXC, max_bytes=1_000):
                pass
    assert caught.value.seen_at_least == 20 * MB
    assert stream.pulled == 0


async def test_a_download_at_exactly_the_cap_is_whole(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        mxc = await client.upload(b"y" * 1_000, content_type="text/plain")
        assert (await client.download(mxc, max_bytes=1_000)).data == b"y" * 1_000
        with pytest.raises(MediaTooLargeError):
            await client.download(mxc, max_bytes=999)
    # Permanent: not retried.
    assert len(hs.requests_to("GET", "/media/download/*")) == 2


async def test_download_stream_hands_out_chunks_and_stops_at_the_cap(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    whole = CountingStream(3 * CHUNK + 10)
    headers = {"content-type": "image/png", "content-disposition": 'inline; filename="a.png"'}
    async with serving(hs, whole, headers) as client:
        async with client.download_stream(MXC, max_bytes=10 * CHUNK) as body:
            sizes = [len(chunk) async for chunk in body.iter_bytes()]
            assert (body.content_type, body.filename, body.content_length) == (
                "image/png",
                "a.png",
                None,
            )
            assert body.bytes_read == 3 * CHUNK + 10
        assert whole.closed
    assert sizes == [CHUNK, CHUNK, CHUNK, 10]

    runaway = CountingStream(20 * MB)
    received: list[int] = []

    async def consume(client: MatrixClient) -> None:
        async with client.download_stream(MXC, max_bytes=2 * CHUNK + 5) as body:
            async for chunk in body:
                received.append(len(chunk))

    async with serving(hs, runaway, {}) as client:
        with pytest.raises(MediaTooLargeError):
            await consume(client)
    assert sum(received) == 2 * CHUNK  # never more than the cap reaches the caller
    assert runaway.pulled == 3 * CHUNK
    assert runaway.closed


async def test_download_stream_releases_its_slot(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        mxc = await client.upload(b"abc", content_type="text/plain")
        for _ in range(40):  # more than the in-flight limit: each must give its slot back
            async with client.download_stream(mxc) as body:
                assert await body.read() == b"abc"
        hs.inject("GET", "/media/download/*", Fault.error(404, "M_NOT_FOUND"), repeat=40)
        for _ in range(40):
            with pytest.raises(MatrixError):
                async with client.download_stream(mxc):
                    pass
        assert client._in_flight.borrowed_tokens == 0


async def test_download_stream_opening_is_retried_like_a_get(
    hs: FakeHomeserver, bot: FakeUser, exact: RetryPolicy, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=exact) as client:
        mxc = await client.upload(b"abc", content_type="text/plain")
        hs.inject("GET", "/media/download/*", Fault.http_status(502), Fault.connect_error())
        async with client.download_stream(mxc) as body:
            assert await body.read() == b"abc"
    assert len(hs.requests_to("GET", "/media/download/*")) == 3


async def test_gzip_bomb_is_inflated_only_up_to_the_cap(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    bomb = gzip.compress(b"0" * 50 * MB)  # ~50 KB on the wire
    stream = CountingStream(0, data=bomb)
    headers = {"content-type": "application/octet-stream", "content-encoding": "gzip"}
    async with serving(hs, stream, headers) as client:
        with pytest.raises(MediaTooLargeError) as caught:
            await client.download(MXC, max_bytes=1_000)
    assert caught.value.seen_at_least == 1_001  # inflation stopped one byte past the cap


async def test_gzip_and_deflate_bodies_are_decoded(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    body = json.dumps({"joined_rooms": ["!a:test.local"]}).encode()
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = {
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "x-deflate-raw": raw_deflate.compress(body) + raw_deflate.flush(),
    }
    for name, data in encodings.items():
        header = "deflate" if name == "x-deflate-raw" else name
        hs.inject(
            "GET", "/joined_rooms", Fault.json(200, data, headers={"content-encoding": header})
        )
    async with hs.user_client(bot) as client:
        for _ in encodings:
            assert await client.joined_rooms() == ["!a:test.local"]


async def test_json_body_over_the_cap_is_transient_and_retried(
    hs: FakeHomeserver, bot: FakeUser, exact: RetryPolicy, autojump_clock: trio.abc.Clock
) -> None:
    huge = {"joined_rooms": ["!r:test.local"] * 1_000}
    hs.inject("GET", "/joined_rooms", Fault.json(200, huge))
    async with hs.user_client(bot, retry=exact, max_response_bytes=1_000) as client:
        assert await client.joined_rooms() == []  # the second answer is the real one
        hs.inject("GET", "/joined_rooms", Fault.json(200, huge), repeat=exact.max_attempts)
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.joined_rooms()
    assert caught.value.limit == 1_000
    assert caught.value.seen_at_least > 1_000


async def test_runaway_sync_body_backs_off_instead_of_failing(
    hs: FakeHomeserver, bot: FakeUser, exact: RetryPolicy, autojump_clock: trio.abc.Clock
) -> None:
    runaway = {"next_batch": "s9", "account_data": {"events": [{"pad": "x" * 5_000}]}}
    hs.inject("GET", "/sync", Fault.json(200, runaway), repeat=2)
    failures: list[str] = []
    async with hs.user_client(bot, retry=exact, max_sync_bytes=4_096) as client:
        syncer = client.syncer(since=None, filter_id=None, on_failure=failures.append)
        started = trio.current_time()
        batch = await syncer.next()
    assert batch.next_batch == f"s{hs.stream_position}"
    assert failures == ["other", "other"]
    assert trio.current_time() - started == pytest.approx(1.0 + 2.0)  # exact backoff


async def test_error_body_over_64_kib_is_ignored_but_the_status_counts(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.json(403, {"errcode": "M_FORBIDDEN", "pad": "x" * MB}))
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError) as caught:
            await client.joined_rooms()
    assert (caught.value.status, caught.value.errcode) == (403, None)


async def test_unsupported_content_encoding_is_a_format_error(
    hs: FakeHomeserver, bot: FakeUser, exact: RetryPolicy, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.json(200, b"??", headers={"content-encoding": "br"}))
    async with hs.user_client(bot, retry=exact) as client:
        assert await client.joined_rooms() == []  # transient: retried, then fine


# -- streamed upload -------------------------------------------------------------------


class FileChunks:
    """Re-iterable chunks (each iteration starts over, as a reopened file would)."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.iterations = data, chunk, 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.iterations += 1
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start : start + self.chunk]


async def test_streamed_upload_sends_chunks_with_a_content_length(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    data = bytes(range(256)) * 1_000
    source = FileChunks(data, 4_096)
    async with hs.user_client(bot) as client:
        mxc = await client.upload(
            source, size=len(data), content_type="application/pdf", filename="r.pdf"
        )
    assert hs.media(mxc) == (data, "application/pdf", "r.pdf")
    (sent,) = hs.requests_to("POST", "/upload")
    assert sent.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in sent.headers
    assert source.iterations == 1


async def test_streamed_upload_retried_on_429_only_when_it_can_start_over(
    hs: FakeHomeserver, bot: FakeUser, exact: RetryPolicy, autojump_clock: trio.abc.Clock
) -> None:
    data = b"z" * 10_000
    source = FileChunks(data, 1_000)
    hs.inject("POST", "/upload", Fault.rate_limited(retry_after_s=2))
    async with hs.user_client(bot, retry=exact) as client:
        mxc = await client.upload(source, size=len(data), content_type="text/plain")
        assert hs.media(mxc)[0] == data
        assert source.iterations == 2

        hs.inject("POST", "/upload", Fault.rate_limited(retry_after_s=2))
        with pytest.raises(RateLimitedError) as caught:  # a generator cannot start over
            await client.upload(aiter(FileChunks(data, 1_000)), size=len(data), content_type="x/y")
    assert caught.value.retry_after_s == 2
    assert len(hs.requests_to("POST", "/upload")) == 3


async def test_streamed_upload_must_match_its_declared_size(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        with pytest.raises(ValueError, match="ended after 100 of 200"):
            await client.upload(FileChunks(b"a" * 100, 10), size=200, content_type="x/y")
        with pytest.raises(ValueError, match="more than the declared 50"):
            await client.upload(FileChunks(b"a" * 100, 10), size=50, content_type="x/y")
        with pytest.raises(ValueError, match="needs its size"):
            await client.upload(FileChunks(b"a", 1), content_type="x/y")
    assert hs.requests_to("POST", "/upload") == []  # nothing reached the server
