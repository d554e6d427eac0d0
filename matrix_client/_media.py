"""Media methods: upload (bytes or a sized stream), capped downloads, limits.

Sizes are input (issue 13): a download is read streamed and stops at
``max_bytes + 1`` (:class:`~matrix_client.MediaTooLargeError`, PERMANENT); the
sender's ``info.size`` and the server's ``Content-Length`` are only claims.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from functools import partial
from typing import Self
from urllib.parse import unquote

import attrs
import httpx

from ._body import BodyTooLargeError, CappedChunks, aclose_iterator, declared_length
from ._errors import MediaTooLargeError, ResponseTooLargeError, TransportError
from ._http import CLIENT_V1, MEDIA_V3, HttpCore, Reply, field, json_object, seg
from ._models import Download, MediaConfig
from ._retry import call_with_retry

#: Authenticated media (``/_matrix/client/v1/media/...``) arrived in spec v1.11.
AUTHENTICATED_MEDIA_VERSION = "v1.11"


def parse_mxc(mxc: str) -> tuple[str, str]:
    """``mxc://server/media_id`` → ``(server, media_id)``; ``ValueError`` otherwise."""
    if not mxc.startswith("mxc://"):
        raise ValueError(f"not an mxc:// URI: {mxc!r}")
    server, sep, media_id = mxc[len("mxc://") :].partition("/")
    if not server or not sep or not media_id or "/" in media_id:
        raise ValueError(f"malformed mxc:// URI: {mxc!r}")
    return server, media_id


def _content_disposition_filename(header: str | None) -> str | None:
    """The file name from a Content-Disposition header (``filename*`` preferred)."""
    if not header:
        return None
    plain: str | None = None
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        key = key.strip().lower()
        value = value.strip()
        if key == "filename*":
            _charset, _, encoded = value.partition("''")
            return unquote(encoded.strip('"'), encoding="utf-8", errors="replace") or None
        if key == "filename":
            plain = value.strip('"') or None
    return plain


class _SizedBody:
    """An upload body that must yield exactly ``size`` bytes (its ``Content-Length``).

    A file that grows or shrinks while it is sent would otherwise become an
    h11 protocol error halfway through, or a truncated upload.
    """

    __slots__ = ("_size", "_source")

    def __init__(self, source: AsyncIterable[bytes], size: int) -> None:
        self._source = source
        self._size = size

    def __aiter__(self) -> _SizedChunks:
        return _SizedChunks(self._source.__aiter__(), self._size)


class _SizedChunks:
    __slots__ = ("_sent", "_size", "_source")

    def __init__(self, source: AsyncIterator[bytes], size: int) -> None:
        self._source = source
        self._size = size
        self._sent = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            if self._sent != self._size:
                raise ValueError(
                    f"upload stream ended after {self._sent} of {self._size} bytes"
                ) from None
            raise
        if not isinstance(chunk, bytes | bytearray | memoryview):
            await aclose_iterator(self._source)
            raise TypeError(f"upload stream yielded {type(chunk).__name__}, not bytes")
        self._sent += len(chunk)
        if self._sent > self._size:
            await aclose_iterator(self._source)
            raise ValueError(f"upload stream yielded more than the declared {self._size} bytes")
        return bytes(chunk)


@attrs.define(eq=False)
class MediaStream:
    """A download being read: ``async for chunk in body.iter_bytes()``.

    Chunks are decoded bytes; their total never exceeds ``max_bytes`` — the
    chunk that would cross it raises :class:`~matrix_client.MediaTooLargeError`
    instead of being returned. A network failure mid-body is a
    :class:`~matrix_client.TransportError` (not retried: start the download again).

    Attributes:
        content_type: the server's ``Content-Type``.
        filename: from ``Content-Disposition``, if any.
        content_length: the declared length of an unencoded body (a claim).
        max_bytes: the cap this stream enforces.
    """

    content_type: str | None
    filename: str | None
    content_length: int | None
    max_bytes: int
    _chunks: CappedChunks = attrs.field(repr=False)
    _label: str = attrs.field(repr=False)

    @property
    def bytes_read(self) -> int:
        return self._chunks.size

    def iter_bytes(self) -> Self:
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except BodyTooLargeError as exc:
            raise MediaTooLargeError(self.max_bytes, exc.seen_at_least) from None
        except httpx.TransportError as exc:
            raise TransportError(f"{self._label}: {type(exc).__name__}: {exc}") from exc

    async def read(self) -> bytes:
        """The rest of the body (still under ``max_bytes``)."""
        return b"".join([chunk async for chunk in self])


class MediaMethods(HttpCore):
    __slots__ = ()

    async def upload(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        filename: str | None = None,
        size: int | None = None,
    ) -> str:
        """Upload → ``mxc://`` URI. POST: retried on 429 only.

        ``data`` is the bytes, or an async iterable of chunks with their total
        ``size`` (required: sent as ``Content-Length``, which Synapse needs) so a
        file goes from disk to the socket without being read into memory. A
        stream that yields more or fewer than ``size`` bytes raises ``ValueError``.
        A one-shot async *iterator* (e.g. an async generator) is sent once, never
        retried (not even after a 429: the :class:`~matrix_client.RateLimitedError`
        carries the wait); an iterable whose ``__aiter__`` starts over (e.g. reopens
        the file) is retried like bytes.
        """
        label = "POST /media/upload"
        headers = {"Content-Type": content_type}
        if isinstance(data, bytes | bytearray | memoryview):
            content: bytes | AsyncIterable[bytes] = bytes(data)
            one_shot = False
        else:
            if size is None or size < 0:
                raise ValueError("a streamed upload needs its size (Content-Length)")
            content = _SizedBody(data, size)
            headers["Content-Length"] = str(size)
            one_shot = hasattr(data, "__anext__")
        kwargs = {
            "content": content,
            "params": {"filename": filename} if filename else None,
            "headers": headers,
        }
        if one_shot:
            body = json_object(
                await self._attempt("POST", f"{MEDIA_V3}/upload", label, **kwargs), label
            )
        else:
            body = await self._call_object("POST", f"{MEDIA_V3}/upload", label, **kwargs)
        uri = field(body, "content_uri", label)
        parse_mxc(uri)
        return uri

    async def _download_path(self, mxc: str) -> tuple[str, str]:
        """Path and label: authenticated media when the server advertises v1.11."""
        server, media_id = parse_mxc(mxc)
        if (await self._server_versions()).supports(AUTHENTICATED_MEDIA_VERSION):
            return (
                f"{CLIENT_V1}/media/download/{seg(server)}/{seg(media_id)}",
                "GET /media/download",
            )
        return (
            f"{MEDIA_V3}/download/{seg(server)}/{seg(media_id)}",
            "GET /media/download (legacy)",
        )

    def _media_cap(self, max_bytes: int | None) -> int:
        if max_bytes is None:
            return self.max_media_bytes
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        return max_bytes

    async def download(self, mxc: str, *, max_bytes: int | None = None) -> Download:
        """Download ``mxc://server/id`` into memory, at most ``max_bytes`` of it.

        Uses authenticated media (``/_matrix/client/v1/media/download``) when the
        server advertises v1.11 in ``/versions``, else the legacy unauthenticated
        endpoint. ``max_bytes`` defaults to the client's ``max_media_bytes``; the
        body is read streamed and reading stops at ``max_bytes + 1``.

        Raises:
            ValueError: a malformed ``mxc`` URI.
            MediaTooLargeError: the body is larger than ``max_bytes`` (PERMANENT).
        """
        path, label = await self._download_path(mxc)
        cap = self._media_cap(max_bytes)

        async def attempt() -> Download:
            try:
                reply = await self._attempt("GET", path, label, max_bytes=cap)
            except ResponseTooLargeError as exc:
                raise MediaTooLargeError(cap, exc.seen_at_least) from None
            return _download(reply)

        return await call_with_retry(
            attempt, policy=self.retry, idempotent=True, label=label, rng=self._rng
        )

    @contextlib.asynccontextmanager
    async def download_stream(
        self, mxc: str, *, max_bytes: int | None = None
    ) -> AsyncIterator[MediaStream]:
        """Download chunk by chunk (e.g. decrypt and write to a file as it comes)::

            async with client.download_stream(mxc, max_bytes=limit) as body:
                async for chunk in body.iter_bytes():
                    out.write(chunk)

        Opening (up to the response headers) is retried like any GET; the body is
        not. A declared ``Content-Length`` over the cap raises
        :class:`~matrix_client.MediaTooLargeError` before any of the body is read.
        The connection is released when the block ends.
        """
        path, label = await self._download_path(mxc)
        cap = self._media_cap(max_bytes)
        response = await call_with_retry(
            partial(self._open_stream, "GET", path, label),
            policy=self.retry,
            idempotent=True,
            label=label,
            rng=self._rng,
        )
        chunks: CappedChunks | None = None
        try:
            try:
                chunks = CappedChunks(response.stream, response.headers, cap)
            except BodyTooLargeError as exc:
                raise MediaTooLargeError(cap, exc.seen_at_least) from None
            yield MediaStream(
                content_type=response.headers.get("content-type"),
                filename=_content_disposition_filename(response.headers.get("content-disposition")),
                content_length=declared_length(response.headers),
                max_bytes=cap,
                chunks=chunks,
                label=label,
            )
        finally:
            try:
                if chunks is not None:
                    await chunks.aclose()
            finally:
                await self._close_stream(response)

    async def media_config(self) -> MediaConfig:
        """Media limits (``m.upload.size``), authenticated endpoint when available."""
        if (await self._server_versions()).supports(AUTHENTICATED_MEDIA_VERSION):
            path, label = f"{CLIENT_V1}/media/config", "GET /media/config"
        else:
            path, label = f"{MEDIA_V3}/config", "GET /media/config (legacy)"
        body = await self._call_object("GET", path, label)
        size = body.get("m.upload.size")
        if isinstance(size, bool) or not isinstance(size, int):
            size = None
        return MediaConfig(upload_size=size)


def _download(reply: Reply) -> Download:
    return Download(
        data=reply.body,
        content_type=reply.headers.get("content-type"),
        filename=_content_disposition_filename(reply.headers.get("content-disposition")),
    )
