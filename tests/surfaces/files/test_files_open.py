"""Opening the agent's file (issue 13 §4): what is sent is what was checked.

The path check and the open are two steps; the agent owns its workspace and can
change it in between. These tests make that change at the worst moment (right
after the check) and expect a refusal, never the file the link points to."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from surfaces.files import (
    FileTooLargeError,
    NotAFileError,
    UnsafePathError,
    open_agent_file,
)
from surfaces.files import _open as open_module
from surfaces.files._open import CHUNK_BYTES

LIMIT = 10 * 1024 * 1024


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "agents" / "0"
    (ws / "out").mkdir(parents=True)
    (ws / "out" / "report.pdf").write_bytes(b"%PDF-report")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "surfaces.db").write_bytes(b"the access token")
    return ws


def after_the_check(monkeypatch, change) -> None:
    """Run ``change()`` between the path check and the open (the race, made certain)."""
    real = open_module.resolve_agent_path

    def check_then_change(*args, **kwargs):
        resolved = real(*args, **kwargs)
        change()
        return resolved

    monkeypatch.setattr(open_module, "resolve_agent_path", check_then_change)


def test_a_regular_file_opens_with_its_name_and_size(workspace: Path) -> None:
    with open_agent_file("/workspace/out/report.pdf", workspace, max_bytes=LIMIT) as f:
        assert (f.name, f.size) == ("report.pdf", len(b"%PDF-report"))
        assert os.pread(f.fd, 100, 0) == b"%PDF-report"


def test_a_link_inside_the_workspace_is_still_allowed(workspace: Path) -> None:
    (workspace / "latest.pdf").symlink_to(workspace / "out" / "report.pdf")
    with open_agent_file("latest.pdf", workspace, max_bytes=LIMIT) as f:
        assert f.name == "report.pdf"  # the checked target, opened without following


def test_the_file_swapped_for_a_link_after_the_check_is_refused(
    workspace: Path, tmp_path: Path, monkeypatch
) -> None:
    target = workspace / "out" / "report.pdf"

    def swap() -> None:
        target.unlink()
        target.symlink_to(tmp_path / "state" / "surfaces.db")

    after_the_check(monkeypatch, swap)
    with pytest.raises(UnsafePathError, match="link"):
        open_agent_file("out/report.pdf", workspace, max_bytes=LIMIT)


def test_a_directory_swapped_for_a_link_after_the_check_is_refused(
    workspace: Path, tmp_path: Path, monkeypatch
) -> None:
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "report.pdf").write_bytes(b"not the checked file")

    def swap() -> None:
        shutil.rmtree(workspace / "out")
        (workspace / "out").symlink_to(decoy)

    after_the_check(monkeypatch, swap)
    with pytest.raises(UnsafePathError, match="link"):
        open_agent_file("out/report.pdf", workspace, max_bytes=LIMIT)


def test_a_fifo_never_blocks_even_when_swapped_in_after_the_check(
    workspace: Path, monkeypatch
) -> None:
    os.mkfifo(workspace / "pipe")
    with pytest.raises(NotAFileError):
        open_agent_file("pipe", workspace, max_bytes=LIMIT)

    target = workspace / "out" / "report.pdf"

    def swap() -> None:
        target.unlink()
        os.mkfifo(target)

    after_the_check(monkeypatch, swap)
    with pytest.raises(NotAFileError, match="not a regular file"):
        open_agent_file("out/report.pdf", workspace, max_bytes=LIMIT)


def test_a_huge_sparse_file_is_refused_by_its_size_unread(workspace: Path) -> None:
    huge = workspace / "huge.bin"
    with huge.open("wb") as f:
        f.truncate(20 * 1024**3)  # 20 GiB that take no disk space
    with pytest.raises(FileTooLargeError) as refused:
        open_agent_file("huge.bin", workspace, max_bytes=LIMIT)
    assert (refused.value.size, refused.value.limit) == (20 * 1024**3, LIMIT)


async def test_chunks_cover_the_file_and_start_over_on_each_iteration(workspace: Path) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 123)
    (workspace / "blob.bin").write_bytes(data)
    with open_agent_file("blob.bin", workspace, max_bytes=LIMIT) as f:
        body = f.chunks()
        first = [chunk async for chunk in body]
        again = [chunk async for chunk in body]  # a retried upload reads it again
    assert [len(c) for c in first] == [CHUNK_BYTES, CHUNK_BYTES, 123]
    assert b"".join(first) == b"".join(again) == data
    await trio.lowlevel.checkpoint()
