import os
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from surfaces.files import MAX_NAME_BYTES, sanitize_filename, unique_path, write_new_file


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        (None, "file"),
        ("a\\b", "b"),
        ("C:\\Users\\me\\doc.txt", "doc.txt"),
        ("dir/", "file"),
        ("a\x00b\x07c.txt", "a_b_c.txt"),
        ("line\nbreak.txt", "line_break.txt"),
        ('what<>:"|?*.txt', "what_______.txt"),
        (" . .. . ", "file"),
        ("...", "file"),
        (".bashrc", "bashrc"),
        ("name. ", "name"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("😀 party.png", "😀 party.png"),
        ("отчёт.docx", "отчёт.docx"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Nul.tar.gz", "_Nul.tar.gz"),
        ("LPT9", "_LPT9"),
        ("COM1 .log", "_COM1 .log"),
        ("console.txt", "console.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),
        ("zero\u200bwidth", "zero_width"),
        ("x\u2028y", "x_y"),
        ("\ud800bad", "_bad"),
    ],
)
def test_sanitize(raw, expected):
    assert sanitize_filename(raw) == expected


def test_nfc_normalised():
    decomposed = "e\u0301te\u0301.txt"
    assert sanitize_filename(decomposed) == "\u00e9t\u00e9.txt"


def test_fallback():
    assert sanitize_filename("..", fallback="upload.bin") == "upload.bin"
    assert sanitize_filename(None, fallback="../evil") == "evil"
    assert sanitize_filename(None, fallback="..") == "file"


def test_long_name_keeps_extension():
    name = sanitize_filename("a" * 300 + ".pdf")
    assert name.endswith(".pdf")
    assert len(name.encode()) == MAX_NAME_BYTES
    assert name == "a" * (MAX_NAME_BYTES - 4) + ".pdf"


def test_long_multibyte_name_cut_on_code_points():
    name = sanitize_filename("я" * 300 + ".txt")
    assert name.endswith(".txt")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert set(name.removesuffix(".txt")) == {"я"}


def test_long_extension_is_not_preserved():
    name = sanitize_filename("x." + "y" * 300)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.startswith("x.yyy")


def test_long_emoji_name():
    name = sanitize_filename("😀" * 100)
    assert name == "😀" * 50


def is_safe_component(name: str) -> bool:
    return (
        bool(name)
        and name not in {".", ".."}
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not name.startswith((".", " "))
        and not name.endswith((".", " "))
        and all(unicodedata.category(c) not in ("Cc", "Cs") for c in name)
        and len(name.encode("utf-8")) <= MAX_NAME_BYTES
        and unicodedata.is_normalized("NFC", name)
        and PurePosixPath(name).name == name
        and PureWindowsPath(name).name == name
        and not PurePosixPath(name).is_absolute()
        and not PureWindowsPath(name).is_absolute()
        and PureWindowsPath(name).stem.split(".")[0].upper() not in {"CON", "NUL", "AUX", "PRN"}
    )


@given(st.one_of(st.none(), st.text(max_size=400)))
def test_property_always_one_safe_component(raw):
    name = sanitize_filename(raw)
    assert is_safe_component(name), repr(name)
    assert sanitize_filename(name) == name  # idempotent


@given(st.text(alphabet=st.sampled_from(list("./\\ .\x00:*aé😀")), max_size=60))
def test_property_hostile_alphabet(raw):
    assert is_safe_component(sanitize_filename(raw))


def test_unique_path(tmp_path: Path):
    assert unique_path(tmp_path, "report.pdf") == tmp_path / "report.pdf"
    (tmp_path / "report.pdf").write_bytes(b"")
    assert unique_path(tmp_path, "report.pdf") == tmp_path / "report (1).pdf"
    (tmp_path / "report (1).pdf").write_bytes(b"")
    assert unique_path(tmp_path, "report.pdf") == tmp_path / "report (2).pdf"


def test_unique_path_no_extension_and_compound(tmp_path: Path):
    (tmp_path / "Makefile").write_bytes(b"")
    assert unique_path(tmp_path, "Makefile").name == "Makefile (1)"
    (tmp_path / "src.tar.gz").write_bytes(b"")
    assert unique_path(tmp_path, "src.tar.gz").name == "src (1).tar.gz"


def test_unique_path_counts_dangling_symlink_as_taken(tmp_path: Path):
    (tmp_path / "a.txt").symlink_to(tmp_path / "missing")
    assert unique_path(tmp_path, "a.txt").name == "a (1).txt"


def test_unique_path_long_name_stays_within_limit(tmp_path: Path):
    name = sanitize_filename("n" * 300 + ".pdf")
    (tmp_path / name).write_bytes(b"")
    other = unique_path(tmp_path, name).name
    assert other.endswith(" (1).pdf")
    assert len(other.encode()) <= MAX_NAME_BYTES


async def test_write_new_file_creates_directory(tmp_path: Path):
    target = tmp_path / "ws" / "inbox"
    path = await write_new_file(target, "../report.pdf", b"%PDF")
    assert path == target / "report.pdf"
    assert path.read_bytes() == b"%PDF"
    again = await write_new_file(target, "report.pdf", b"v2")
    assert again == target / "report (1).pdf"
    assert path.read_bytes() == b"%PDF"


async def test_write_new_file_concurrent_same_name(tmp_path: Path):
    results: list[Path] = []

    async def write(i: int) -> None:
        results.append(await write_new_file(tmp_path, "same.txt", f"{i}".encode()))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(write, i)

    assert len(set(results)) == 20
    assert {p.name for p in results} == {"same.txt"} | {f"same ({i}).txt" for i in range(1, 20)}
    assert sorted(p.read_text() for p in results) == sorted(str(i) for i in range(20))


async def test_write_new_file_never_follows_symlink(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "x.txt").symlink_to(outside)
    path = await write_new_file(ws, "x.txt", b"new")
    assert path == ws / "x (1).txt"
    assert outside.read_bytes() == b"keep"


async def test_write_new_file_removes_partial_file_on_error(tmp_path: Path, monkeypatch):
    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        await write_new_file(tmp_path, "a.txt", b"data")
    assert os.listdir(tmp_path) == []
