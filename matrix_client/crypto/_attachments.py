"""Encrypted attachments, the spec's v2 scheme (``file`` objects in event content).

AES-256-CTR with a fresh random key per file and a 128-bit counter block whose first 64
bits are random and last 64 bits start at zero (so the counter never wraps into the
random half, whatever the file size); the SHA-256 of the *ciphertext* goes into the event,
so a client can refuse a tampered download before using it. The cipher is
``cryptography``'s; nothing here is hand-written crypto.

Both directions stream, so a 50 MB file is never held twice: feed chunks to
:meth:`AttachmentEncryptor.update` / :meth:`AttachmentDecryptor.update`. The decryptor
can only judge the hash at the end: keep its output aside (a temporary file) until
:meth:`AttachmentDecryptor.finalize` returned, and discard it if that raised.
:class:`DecryptingChunks` / :class:`EncryptingChunks` wrap them as async iterables of
chunks (a download written to disk as it comes, a streamed upload).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._errors import AttachmentError
from ._signing import b64decode, b64encode

_VERSION = "v2"
_ALG = "A256CTR"


def _urlsafe_b64(data: bytes) -> str:
    return b64encode(data).replace("+", "-").replace("/", "_")


class AttachmentEncryptor:
    """Encrypt one file in chunks; then :meth:`file_object` gives its ``file`` content."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._iv = os.urandom(8) + b"\x00" * 8
        self._cipher = Cipher(algorithms.AES(self._key), modes.CTR(self._iv)).encryptor()
        self._hash = hashlib.sha256()
        self._done = False

    def update(self, chunk: bytes) -> bytes:
        """The ciphertext of ``chunk`` (same length)."""
        if self._done:
            raise AttachmentError("the encryptor is finalized")
        out = self._cipher.update(chunk)
        self._hash.update(out)
        return out

    def finalize(self) -> bytes:
        """End the stream; returns the last ciphertext bytes (always empty for CTR)."""
        if not self._done:
            tail = self._cipher.finalize()
            self._hash.update(tail)
            self._done = True
            return tail
        return b""

    def file_object(self, url: str) -> dict[str, Any]:
        """The ``file`` object for the content, once uploaded to ``url`` (an ``mxc://``)."""
        if not self._done:
            raise AttachmentError("finalize the encryptor before describing the file")
        return {
            "v": _VERSION,
            "key": {
                "kty": "oct",
                "key_ops": ["encrypt", "decrypt"],
                "alg": _ALG,
                "k": _urlsafe_b64(self._key),
                "ext": True,
            },
            "iv": b64encode(self._iv),
            "hashes": {"sha256": b64encode(self._hash.digest())},
            "url": url,
        }


def _field(obj: Mapping[str, Any], name: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise AttachmentError(f"the file object has no {name!r}")
    return value


class AttachmentDecryptor:
    """Decrypt one downloaded file in chunks, checking its ``file`` object first.

    Raises :class:`AttachmentError` at construction for an invalid ``file`` object (wrong
    version, algorithm, key type or length, IV length, missing hash), and in
    :meth:`finalize` when the ciphertext's SHA-256 is not the one in the event.
    """

    def __init__(self, file: Mapping[str, Any]) -> None:
        if not isinstance(file, Mapping):
            raise AttachmentError("the file object is not an object")
        if file.get("v") != _VERSION:
            raise AttachmentError(f"unsupported encrypted file version {file.get('v')!r}")
        key = _field(file, "key")
        if not isinstance(key, Mapping):
            raise AttachmentError("the file key is not a JWK object")
        if key.get("kty") != "oct" or key.get("alg") != _ALG:
            raise AttachmentError("the file key is not an A256CTR octet key")
        ops = key.get("key_ops")
        if not isinstance(ops, list) or "decrypt" not in ops:
            raise AttachmentError("the file key may not be used to decrypt")
        if key.get("ext") is not True:
            raise AttachmentError("the file key is not extractable (ext must be true)")
        hashes = _field(file, "hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, Mapping) else None
        try:
            raw_key = b64decode(_field(key, "k")) if isinstance(key.get("k"), str) else b""
            iv = b64decode(_field(file, "iv")) if isinstance(file.get("iv"), str) else b""
            digest = b64decode(sha256) if isinstance(sha256, str) else b""
        except ValueError as exc:
            raise AttachmentError(f"bad base64 in the file object: {exc}") from None
        if len(raw_key) != 32:
            raise AttachmentError("the file key is not 256 bits")
        if len(iv) != 16:
            raise AttachmentError("the file IV is not 128 bits")
        if len(digest) != 32:
            raise AttachmentError("the file object has no valid sha256 hash")
        self._expected = digest
        self._cipher = Cipher(algorithms.AES(raw_key), modes.CTR(iv)).decryptor()
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> bytes:
        """The plaintext of ``chunk``: not trustworthy until :meth:`finalize` returned."""
        self._hash.update(chunk)
        return self._cipher.update(chunk)

    def finalize(self) -> bytes:
        """Check the hash of everything fed; raises :class:`AttachmentError` on mismatch."""
        tail = self._cipher.finalize()
        if not hmac.compare_digest(self._hash.digest(), self._expected):
            raise AttachmentError("the downloaded file's sha256 does not match the event")
        return tail


def encrypt_attachment(data: bytes) -> tuple[bytes, AttachmentEncryptor]:
    """Encrypt a small file in one go: the ciphertext to upload, and the finalized
    encryptor whose :meth:`~AttachmentEncryptor.file_object` takes the upload's URL."""
    encryptor = AttachmentEncryptor()
    ciphertext = encryptor.update(data) + encryptor.finalize()
    return ciphertext, encryptor


def decrypt_attachment(ciphertext: bytes, file: Mapping[str, Any]) -> bytes:
    """Decrypt and verify a small file in one go."""
    decryptor = AttachmentDecryptor(file)
    plaintext = decryptor.update(ciphertext)
    return plaintext + decryptor.finalize()


class DecryptingChunks:
    """An async iterable of plaintext chunks over downloaded ciphertext chunks, for
    writing a file as it arrives: the hash is checked after the last chunk, and a
    mismatch raises :class:`AttachmentError` from the iteration itself — so a writer
    that removes its partial file when its source raises never keeps a tampered file.

    Iterate it once. An invalid ``file`` object raises at construction.
    """

    def __init__(self, chunks: AsyncIterable[bytes], file: Mapping[str, Any]) -> None:
        self._decryptor = AttachmentDecryptor(file)
        self._chunks = chunks.__aiter__()
        self._done = False

    def __aiter__(self) -> DecryptingChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._done = True
            return self._decryptor.finalize()  # raises on a hash mismatch
        return self._decryptor.update(chunk)


class EncryptingChunks:
    """An async iterable of ciphertext chunks over a plaintext source, for a streamed
    upload. Every iteration starts over with a fresh key (a retried upload sends a
    whole new ciphertext); :meth:`file_object` describes the last iteration, which
    must have run to its end. The ciphertext is as long as the plaintext (CTR)."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self._encryptor: AttachmentEncryptor | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._encryptor = AttachmentEncryptor()
        return _Encrypting(self._source.__aiter__(), self._encryptor)

    def file_object(self, url: str) -> dict[str, Any]:
        """The ``file`` object of the uploaded ciphertext (see ``AttachmentEncryptor``)."""
        if self._encryptor is None:
            raise AttachmentError("nothing was encrypted yet")
        return self._encryptor.file_object(url)


class _Encrypting:
    def __init__(self, chunks: AsyncIterator[bytes], encryptor: AttachmentEncryptor) -> None:
        self._chunks = chunks
        self._encryptor = encryptor

    def __aiter__(self) -> _Encrypting:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._encryptor.finalize()
            raise
        return self._encryptor.update(chunk)
