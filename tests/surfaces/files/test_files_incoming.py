"""Storing a user's file in the agent's ``incoming/`` (issue 13 §4), whatever the
agent did to its workspace."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from surfaces.files import (
    IncomingFileError,
    delete_incoming,
    store_incoming,
)
from surfaces.files._incoming import CHUNK_BYTES


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "agents" / "0"
    ws.mkdir(parents=True)
    return ws


async def test_a_file_is_written_as_it_arrives_under_a_unique_name(workspace: Path) -> None:
    claimed: list[str] = []

    async def claim(name: str) -> None:
        claimed.append(name)

    big = os.urandom(CHUNK_BYTES + 10)
    first = await store_incoming(workspace, "report.pdf", body(b"one"))
    second = await store_incoming(workspace, "report.pdf", body(big[:7], big[7:]), claimed=claim)
    assert (first.rel_path, first.size) == ("incoming/report.pdf", 3)
    assert (second.name, second.size) == ("report (1).pdf", len(big))
    assert claimed == ["report (1).pdf"]
    assert (workspace / "incoming" / "report (1).pdf").read_bytes() == big


async def test_incoming_replaced_by_a_link_is_refused_and_nothing_lands_there(
    workspace: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "bot-config"
    elsewhere.mkdir()
    (workspace / "incoming").symlink_to(elsewhere)
    with pytest.raises(IncomingFileError, match="link"):
        await store_incoming(workspace, "evil.txt", body(b"x"))
    assert list(elsewhere.iterdir()) == []


async def test_incoming_that_is_a_file_is_refused(workspace: Path) -> None:
    (workspace / "incoming").write_text("not a directory")
    with pytest.raises(IncomingFileError):
        await store_incoming(workspace, "a.txt", body(b"x"))


async def test_a_link_waiting_at_the_name_is_stepped_over_not_followed(
    workspace: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (workspace / "incoming").mkdir()
    (workspace / "incoming" / "a.txt").symlink_to(victim)
    stored = await store_incoming(workspace, "a.txt", body(b"new"))
    assert stored.name == "a (1).txt"
    assert victim.read_text() == "keep me"


async def test_a_body_that_fails_midway_leaves_no_partial_file(workspace: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (CHUNK_BYTES + 1)  # written already
        raise ConnectionError("the download broke")

    with pytest.raises(ConnectionError):
        await store_incoming(workspace, "half.bin", broken())
    assert list((workspace / "incoming").iterdir()) == []


def test_delete_incoming_deletes_only_inside_incoming(workspace: Path, tmp_path: Path) -> None:
    (workspace / "incoming").mkdir()
    (workspace / "incoming" / "a.txt").write_text("a")
    (workspace / "keep.txt").write_text("k")
    assert delete_incoming(workspace, "incoming/a.txt")
    assert not delete_incoming(workspace, "incoming/a.txt")  # gone already
    for outside in ("keep.txt", "incoming/../keep.txt", "incoming/sub/x", "/etc/passwd", ".."):
        assert not delete_incoming(workspace, outside)
    assert (workspace / "keep.txt").exists()
    # through a link, nothing is deleted either
    (workspace / "incoming").rmdir()
    (workspace / "incoming").symlink_to(tmp_path)
    (tmp_path / "b.txt").write_text("b")
    assert not delete_incoming(workspace, "incoming/b.txt")
    assert (tmp_path / "b.txt").exists()
