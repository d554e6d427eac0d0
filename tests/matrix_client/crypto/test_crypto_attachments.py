"""Encrypted attachments (v2): streaming round trip, hash check, ``file`` validation."""

from __future__ import annotations

import copy
import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from matrix_client.crypto import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    AttachmentError,
    DecryptingChunks,
    EncryptingChunks,
    decrypt_attachment,
    encrypt_attachment,
)
from matrix_client.crypto._signing import b64decode, b64encode

URL = "mxc://x/abc"


def test_streaming_round_trip_in_uneven_chunks() -> None:
    data = os.urandom(1_000_003)
    encryptor = AttachmentEncryptor()
    pieces = [encryptor.update(data[i : i + 65_521]) for i in range(0, len(data), 65_521)]
    ciphertext = b"".join(pieces) + encryptor.finalize()
    file = encryptor.file_object(URL)
    assert len(ciphertext) == len(data)
    assert ciphertext != data
    decryptor = AttachmentDecryptor(file)
    out = b"".join(decryptor.update(ciphertext[i : i + 4096]) for i in range(0, len(data), 4096))
    assert out + decryptor.finalize() == data


def test_file_object_shape_follows_the_spec() -> None:
    ciphertext, encryptor = encrypt_attachment(b"hello")
    file = encryptor.file_object(URL)
    assert file["v"] == "v2"
    assert file["url"] == URL
    assert file["key"]["kty"] == "oct"
    assert file["key"]["alg"] == "A256CTR"
    assert file["key"]["ext"] is True
    assert file["key"]["key_ops"] == ["encrypt", "decrypt"]
    assert "=" not in file["key"]["k"] + file["iv"] + file["hashes"]["sha256"]
    assert "+" not in file["key"]["k"]
    assert "/" not in file["key"]["k"]  # the JWK key is base64url
    iv = b64decode(file["iv"])
    assert len(iv) == 16
    assert iv[8:] == b"\x00" * 8  # the counter half starts at zero
    assert b64decode(file["hashes"]["sha256"]) == hashlib.sha256(ciphertext).digest()


def test_it_is_plain_aes_ctr_as_other_clients_compute_it() -> None:
    ciphertext, encryptor = encrypt_attachment(b"interop" * 100)
    file = encryptor.file_object(URL)
    key = b64decode(file["key"]["k"])
    iv = b64decode(file["iv"])
    reference = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    assert reference.update(ciphertext) + reference.finalize() == b"interop" * 100


def test_each_file_gets_its_own_key_and_iv() -> None:
    a = encrypt_attachment(b"same")[1].file_object(URL)
    b = encrypt_attachment(b"same")[1].file_object(URL)
    assert a["key"]["k"] != b["key"]["k"]
    assert a["iv"] != b["iv"]


def test_a_tampered_download_fails_the_hash_check() -> None:
    ciphertext, encryptor = encrypt_attachment(b"important")
    file = encryptor.file_object(URL)
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(AttachmentError, match="sha256"):
        decrypt_attachment(tampered, file)
    with pytest.raises(AttachmentError, match="sha256"):
        decrypt_attachment(ciphertext[:-1], file)  # truncated


def _broken(change) -> dict:  # type: ignore[no-untyped-def]
    file = encrypt_attachment(b"x")[1].file_object(URL)
    file = copy.deepcopy(file)
    change(file)
    return file


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(v="v1"), "version"),
        (lambda f: f.pop("key"), "key"),
        (lambda f: f["key"].update(alg="A128CTR"), "A256CTR"),
        (lambda f: f["key"].update(kty="RSA"), "A256CTR"),
        (lambda f: f["key"].update(key_ops=["encrypt"]), "decrypt"),
        (lambda f: f["key"].update(ext=False), "ext"),
        (lambda f: f["key"].update(k=b64encode(b"short")), "256 bits"),
        (lambda f: f["key"].update(k="!!!"), "base64"),
        (lambda f: f.update(iv=b64encode(b"\x00" * 8)), "IV"),
        (lambda f: f.pop("hashes"), "hashes"),
        (lambda f: f.update(hashes={"sha512": "x"}), "sha256"),
    ],
)
def test_invalid_file_objects_are_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AttachmentError, match=message):
        AttachmentDecryptor(_broken(change))


def test_the_encryptor_must_be_finished_before_describing_and_not_fed_after() -> None:
    encryptor = AttachmentEncryptor()
    encryptor.update(b"x")
    with pytest.raises(AttachmentError):
        encryptor.file_object(URL)
    encryptor.finalize()
    with pytest.raises(AttachmentError):
        encryptor.update(b"more")


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def _collect(iterable) -> bytes:
    return b"".join([chunk async for chunk in iterable])


async def test_streamed_encryption_and_decryption_round_trip() -> None:
    class Source:
        def __aiter__(self):
            return _chunks(b"first part, ", b"second part")

    stream = EncryptingChunks(Source())
    first = await _collect(stream)
    second = await _collect(stream)  # a retried upload: a whole new ciphertext
    assert first != second
    assert len(second) == len(b"first part, second part")
    file = stream.file_object("mxc://x/y")
    plain = await _collect(DecryptingChunks(_chunks(second[:5], second[5:]), file))
    assert plain == b"first part, second part"


async def test_streamed_decryption_raises_at_the_end_on_a_tampered_file() -> None:
    ciphertext, encryptor = encrypt_attachment(b"the real content")
    file = encryptor.file_object("mxc://x/y")
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    stream = DecryptingChunks(_chunks(tampered), file)
    assert await stream.__anext__()  # written as it came: only the end tells
    with pytest.raises(AttachmentError):
        await stream.__anext__()
