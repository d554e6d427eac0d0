import os
from pathlib import Path

import pytest

from surfaces.files import (
    MissingFileError,
    NotAFileError,
    OutboundFileError,
    UnsafePathError,
    guess_mime,
    guess_msgtype,
    relative_to_workspace,
    resolve_agent_path,
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "agents" / "0"
    (ws / "out").mkdir(parents=True)
    (ws / "out" / "report.pdf").write_bytes(b"%PDF")
    (ws / "top.txt").write_text("hi")
    (tmp_path / "secret.txt").write_text("token")
    return ws


@pytest.mark.parametrize(
    "raw",
    [
        "/workspace/out/report.pdf",
        "/workspace//out/./report.pdf",
        "/agents/0/out/report.pdf",
        "/agents/7/out/report.pdf",
        "out/report.pdf",
        "./out/report.pdf",
        "out/../out/report.pdf",
    ],
)
def test_accepted_forms(workspace: Path, raw: str):
    assert resolve_agent_path(raw, workspace) == (workspace / "out" / "report.pdf").resolve()


def test_bot_side_absolute_path(workspace: Path):
    raw = str(workspace / "top.txt")
    assert resolve_agent_path(raw, workspace) == (workspace / "top.txt").resolve()


def test_custom_mount(workspace: Path):
    assert (
        resolve_agent_path("/home/agent/top.txt", workspace, agent_mount="/home/agent")
        == (workspace / "top.txt").resolve()
    )
    with pytest.raises(UnsafePathError):
        resolve_agent_path("/workspace/top.txt", workspace, agent_mount="/home/agent")


@pytest.mark.parametrize(
    "raw",
    [
        "../secret.txt",
        "out/../../secret.txt",
        "/workspace/../secret.txt",
        "/agents/0/../../secret.txt",
        "/agents/0/../1/x",
        "..",
    ],
)
def test_dotdot_escape(workspace: Path, raw: str):
    with pytest.raises(UnsafePathError, match="escapes"):
        resolve_agent_path(raw, workspace)


@pytest.mark.parametrize("raw", ["/etc/passwd", "/workspacex/top.txt", "/agents", "/tmp/x"])
def test_absolute_outside(workspace: Path, raw: str):
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_agent_path(raw, workspace)


def test_symlink_escape(workspace: Path, tmp_path: Path):
    (workspace / "link.txt").symlink_to(tmp_path / "secret.txt")
    (workspace / "dirlink").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symlink"):
        resolve_agent_path("link.txt", workspace)
    with pytest.raises(UnsafePathError, match="symlink"):
        resolve_agent_path("/workspace/dirlink/secret.txt", workspace)


def test_symlink_then_dotdot_follows_link_first(workspace: Path, tmp_path: Path):
    # "deep/.." lexically stays inside, but the kernel resolves deep first.
    (tmp_path / "elsewhere" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere" / "leak.txt").write_text("x")
    (workspace / "deep").symlink_to(tmp_path / "elsewhere" / "sub")
    with pytest.raises(UnsafePathError):
        resolve_agent_path("deep/../leak.txt", workspace)


def test_symlink_inside_allowed(workspace: Path):
    (workspace / "latest.pdf").symlink_to(workspace / "out" / "report.pdf")
    assert (
        resolve_agent_path("latest.pdf", workspace) == (workspace / "out" / "report.pdf").resolve()
    )


def test_symlinked_workspace_allowed(workspace: Path, tmp_path: Path):
    alias = tmp_path / "alias"
    alias.symlink_to(workspace)
    assert resolve_agent_path("top.txt", alias) == (workspace / "top.txt").resolve()


def test_symlink_loop(workspace: Path):
    (workspace / "loop").symlink_to(workspace / "loop")
    with pytest.raises(OutboundFileError):
        resolve_agent_path("loop", workspace)


def test_missing_file(workspace: Path):
    with pytest.raises(MissingFileError, match="no such file") as info:
        resolve_agent_path("/workspace/nope.txt", workspace)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.raw == "/workspace/nope.txt"


def test_missing_workspace(tmp_path: Path):
    with pytest.raises(MissingFileError, match="workspace"):
        resolve_agent_path("x", tmp_path / "gone")


@pytest.mark.parametrize("raw", ["out", "/workspace", "/workspace/", "/agents/3", ".", "out/"])
def test_directory_rejected(workspace: Path, raw: str):
    with pytest.raises(NotAFileError, match="directory"):
        resolve_agent_path(raw, workspace)


def test_fifo_rejected(workspace: Path):
    os.mkfifo(workspace / "pipe")
    with pytest.raises(NotAFileError, match="not a regular file"):
        resolve_agent_path("pipe", workspace)


@pytest.mark.parametrize(("raw", "reason"), [("", "empty"), ("  ", "empty"), ("a\x00b", "NUL")])
def test_bad_strings(workspace: Path, raw: str, reason: str):
    with pytest.raises(UnsafePathError, match=reason):
        resolve_agent_path(raw, workspace)


def test_error_hierarchy():
    assert issubclass(UnsafePathError, OutboundFileError)
    assert issubclass(NotAFileError, OutboundFileError)
    assert issubclass(MissingFileError, OutboundFileError)
    error = UnsafePathError("path escapes the workspace", "../x")
    assert error.reason == "path escapes the workspace"
    assert str(error) == "path escapes the workspace: '../x'"


def test_relative_to_workspace(workspace: Path):
    assert relative_to_workspace(workspace / "out" / "report.pdf", workspace) == "out/report.pdf"
    assert relative_to_workspace(Path("out/report.pdf"), workspace) == "out/report.pdf"
    assert relative_to_workspace(workspace / "inbox" / "new file.txt", workspace) == (
        "inbox/new file.txt"
    )


def test_relative_to_workspace_rejects_outside(workspace: Path, tmp_path: Path):
    with pytest.raises(UnsafePathError, match="outside"):
        relative_to_workspace(tmp_path / "secret.txt", workspace)
    with pytest.raises(UnsafePathError, match="outside"):
        relative_to_workspace(Path("../secret.txt"), workspace)
    with pytest.raises(UnsafePathError, match="workspace itself"):
        relative_to_workspace(workspace, workspace)


@pytest.mark.parametrize(
    ("mime", "msgtype"),
    [
        ("image/png", "m.image"),
        ("IMAGE/JPEG", "m.image"),
        ("image/svg+xml", "m.file"),
        ("audio/ogg; codecs=opus", "m.audio"),
        ("video/mp4", "m.video"),
        ("application/pdf", "m.file"),
        ("text/plain", "m.file"),
        ("", "m.file"),
        ("garbage", "m.file"),
    ],
)
def test_guess_msgtype(mime: str, msgtype: str):
    assert guess_msgtype(mime) == msgtype


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("a.png", "image/png"),
        ("A.JPG", "image/jpeg"),
        ("doc.pdf", "application/pdf"),
        ("notes.md", "text/markdown"),
        ("voice.ogg", "audio/ogg"),
        ("clip.mp4", "video/mp4"),
        ("data.csv", "text/csv"),
        ("noext", "application/octet-stream"),
        ("weird.zzzz", "application/octet-stream"),
        ("dir/sub/photo.webp", "image/webp"),
    ],
)
def test_guess_mime(name: str, mime: str):
    assert guess_mime(Path(name)) == mime
    assert guess_mime(name) == mime
