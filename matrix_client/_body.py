"""Response bodies read streamed, decoded, and never beyond a byte cap.

Sizes are input: a homeserver (or whatever answers in its place) decides how
many bytes it sends, and ``Content-Length`` and ``info.size`` are claims. Every
body the client reads goes through :class:`CappedChunks`, which stops at
``limit + 1`` decoded bytes, so nothing over the cap is ever buffered.

Decoding is ours rather than httpx's because httpx inflates a whole network
chunk at once: a 64 KiB gzip chunk can expand to ~64 MiB before any size check
could run. Here ``zlib``'s ``max_length`` bounds each step to the room left
under the cap. We advertise ``gzip, deflate`` only; another
``Content-Encoding`` is a :class:`ResponseFormatError` (the server ignored our
``Accept-Encoding``).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Self

import httpx

from ._errors import ResponseFormatError


class BodyTooLargeError(Exception):
    """Internal: the body passed the cap; each caller re-raises its own typed error."""

    def __init__(self, seen_at_least: int) -> None:
        super().__init__(seen_at_least)
        self.seen_at_least = seen_at_least


class _Inflate:
    """gzip / deflate with bounded output per step (see the module docstring)."""

    __slots__ = ("_first", "_raw_fallback", "_z")

    def __init__(self, wbits: int, *, raw_fallback: bool) -> None:
        self._z = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback  # "deflate" servers often send raw deflate
        self._first = True

    def feed(self, data: bytes, room: int) -> bytes:
        """At most ``room`` (≥ 1) decoded bytes; exactly ``room`` means "over the cap"."""
        first, self._first = self._first, False
        try:
            return self._z.decompress(data, room)
        except zlib.error as exc:
            if first and self._raw_fallback:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._z.decompress(data, room)
            raise ResponseFormatError(None, 200, f"corrupt compressed body: {exc}") from exc

    def flush(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise ResponseFormatError(None, 200, f"corrupt compressed body: {exc}") from exc


def _encoding_and_length(headers: httpx.Headers) -> tuple[str, int | None]:
    """``Content-Encoding`` (lower case, ``""`` if none) and the declared length of an
    unencoded body (``Content-Length`` when a plain number: a claim). One pass
    over the raw headers: this runs for every response."""
    encoding = b""
    length: bytes | None = None
    for key, value in headers.raw:
        if len(key) == 16 and key.lower() == b"content-encoding":
            encoding = value
        elif len(key) == 14 and key.lower() == b"content-length":
            length = value
    text = encoding.decode("latin-1").strip().lower()
    if text == "identity":
        text = ""
    if text or length is None:
        return text, None
    length = length.strip()
    return text, int(length) if length.isdigit() else None


def declared_length(headers: httpx.Headers) -> int | None:
    """``Content-Length`` of an unencoded body, when it is a plain number (a claim)."""
    return _encoding_and_length(headers)[1]


def _decoder(encoding: str) -> _Inflate | None:
    if not encoding:
        return None
    if encoding in ("gzip", "x-gzip"):
        return _Inflate(zlib.MAX_WBITS | 16, raw_fallback=False)
    if encoding == "deflate":
        return _Inflate(zlib.MAX_WBITS, raw_fallback=True)
    raise ResponseFormatError(None, 200, f"unsupported Content-Encoding {encoding!r}")


class CappedChunks:
    """Decoded chunks of a response stream, raising :class:`BodyTooLargeError` past ``limit``.

    An async iterator class, not an async generator: a generator abandoned
    mid-body is finalised late under trio (and warned about). The transport's
    own iterator *is* one, so whoever stops early calls :meth:`aclose`.
    The chunk that crosses the cap is read from the network but never returned.
    """

    __slots__ = ("_decoder", "_done", "_limit", "_open", "_size", "_source")

    def __init__(self, stream: httpx.AsyncByteStream, headers: httpx.Headers, limit: int) -> None:
        encoding, declared = _encoding_and_length(headers)
        if declared is not None and declared > limit:
            raise BodyTooLargeError(declared)
        self._decoder = _decoder(encoding)
        self._source: AsyncIterator[bytes] = stream.__aiter__()
        self._limit = limit
        self._size = 0
        self._done = False
        self._open = True  # the source iterator is neither exhausted nor closed

    @property
    def size(self) -> int:
        """Decoded bytes returned so far."""
        return self._size

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        decoder = self._decoder
        while not self._done:
            try:
                raw = await self._source.__anext__()
            except StopAsyncIteration:
                self._done = True
                self._open = False
                if decoder is not None and (tail := decoder.flush()):
                    return await self._take(tail)
                break
            chunk = raw if decoder is None else decoder.feed(raw, self._limit - self._size + 1)
            if chunk:
                return await self._take(chunk)
        raise StopAsyncIteration

    async def _take(self, chunk: bytes) -> bytes:
        size = self._size + len(chunk)
        if size > self._limit:
            self._done = True
            await self.aclose()
            raise BodyTooLargeError(size)
        self._size = size
        return chunk

    async def aclose(self) -> None:
        """Close the source iterator if it is still open (idempotent)."""
        if self._open:
            self._open = False
            self._done = True
            await aclose_iterator(self._source)


async def read_capped(stream: httpx.AsyncByteStream, headers: httpx.Headers, limit: int) -> bytes:
    """The whole decoded body, or :class:`BodyTooLargeError` once it passes ``limit``."""
    chunks = CappedChunks(stream, headers, limit)
    try:
        parts = [chunk async for chunk in chunks]
    finally:
        await chunks.aclose()  # only does something after a failure half-way
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def aclose_iterator(iterator: object) -> None:
    """``aclose()`` an async iterator that has one (async generators do)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
