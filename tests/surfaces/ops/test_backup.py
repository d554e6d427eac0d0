"""``surfaces backup``: a consistent, verified, private copy, also beside a running bot."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from surfaces import cli
from surfaces.ops import backup
from surfaces.ops.backup import BackupError, backup_database
from surfaces.state import Store


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


def open_store(state: Path) -> Store:
    """The bot's own store (WAL, its pragmas), with a few rows in it."""
    store = Store.open_sync(state / "surfaces.db")
    write(state, {f"key.{n}": "x" * 200 for n in range(50)})
    return store


def write(state: Path, values: dict[str, str]) -> None:
    conn = sqlite3.connect(state / "surfaces.db", isolation_level=None)
    try:
        conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", values.items())
    finally:
        conn.close()


def rows(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT key, value FROM kv WHERE key LIKE 'key.%'").fetchall())
    finally:
        conn.close()


def test_backup_beside_a_running_bot(state: Path, tmp_path: Path) -> None:
    store = open_store(state)
    try:
        # The bot is mid-write: another connection holds an open write transaction.
        writer = sqlite3.connect(state / "surfaces.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO kv (key, value) VALUES ('key.uncommitted', 'x')")
        result = backup_database(state / "surfaces.db", tmp_path / "copy.db")
        writer.execute("COMMIT")
        writer.close()
        write(state, {"key.after": "y"})  # the bot goes on writing
    finally:
        store.close()

    copy = tmp_path / "copy.db"
    assert result.path == copy
    assert result.size == copy.stat().st_size
    assert result.schema_version >= 1
    copied = rows(copy)
    assert len(copied) == 50  # the committed state of one moment
    assert "key.uncommitted" not in copied
    assert "key.after" not in copied
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "state"]  # no temp left


def test_backup_of_a_stopped_bot_and_restore(state: Path, tmp_path: Path) -> None:
    open_store(state).close()
    backup_database(state / "surfaces.db", tmp_path / "copy.db")

    # restore, as docs/operations.md says: the copy becomes surfaces.db of a state dir
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "surfaces.db").write_bytes((tmp_path / "copy.db").read_bytes())
    Store.open_sync(restored / "surfaces.db").close()  # the bot opens (and migrates) it
    assert rows(restored / "surfaces.db")["key.7"] == "x" * 200
    # the source is still the bot's to open
    Store.open_sync(state / "surfaces.db").close()


def test_never_overwrites_without_force(state: Path, tmp_path: Path) -> None:
    open_store(state).close()
    dest = tmp_path / "copy.db"
    dest.write_text("an older backup")
    with pytest.raises(BackupError, match="exists; use --force") as info:
        backup_database(state / "surfaces.db", dest)
    assert info.value.exit_code == 2
    assert dest.read_text() == "an older backup"

    backup_database(state / "surfaces.db", dest, force=True)
    assert len(rows(dest)) == 50


def test_a_directory_destination_gets_a_dated_file(state: Path, tmp_path: Path) -> None:
    open_store(state).close()
    backups = tmp_path / "backups"
    backups.mkdir()
    result = backup_database(state / "surfaces.db", backups)
    assert result.path.parent == backups
    assert result.path.name.startswith("surfaces-")
    assert result.path.name.endswith("Z.db")


def test_missing_and_foreign_databases_fail_without_writing(state: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    with pytest.raises(BackupError, match="no state database at") as info:
        backup_database(state / "surfaces.db", dest)
    assert info.value.exit_code == 1

    other = sqlite3.connect(state / "surfaces.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(BackupError, match="is not a Surfaces state database"):
        backup_database(state / "surfaces.db", dest)

    (state / "surfaces.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(BackupError, match="cannot copy"):
        backup_database(state / "surfaces.db", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_refuses_to_run_as_another_user(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(state).close()
    owner = (state / "surfaces.db").stat().st_uid
    monkeypatch.setattr(backup.os, "geteuid", lambda: owner + 1)
    with pytest.raises(BackupError, match="run this as the owner") as info:
        backup_database(state / "surfaces.db", tmp_path / "copy.db")
    assert info.value.exit_code == 2


def test_command(
    state: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_store(state).close()
    dest = tmp_path / "copy.db"
    assert cli.main(["backup", "--state-dir", str(state), str(dest)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"surfaces backup: {dest} (")
    assert "integrity ok" in out
    assert "pickle.key" not in out  # no encryption key file: nothing to remind of
    (state / "pickle.key").write_text("key\n")
    assert cli.main(["backup", "--state-dir", str(state), str(tmp_path / "copy2.db")]) == 0
    assert f"open only with {state / 'pickle.key'}" in capsys.readouterr().out

    assert cli.main(["backup", "--state-dir", str(state), str(dest)]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert cli.main(["backup", "--state-dir", str(tmp_path / "nope"), str(dest) + "2"]) == 1
    assert "no state database" in capsys.readouterr().err
    # a trailing slash names a directory: one that is not there is an error, not a file
    missing_dir = str(tmp_path / "backups") + "/"
    assert cli.main(["backup", "--state-dir", str(state), missing_dir]) == 2
    assert f"{missing_dir} is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "backups").exists()

    # without --state-dir: the configured state_dir, as the bot finds it
    monkeypatch.setenv("MATRIX_HOMESERVER", "https://matrix.example.org")
    monkeypatch.setenv("MATRIX_USER_ID", "@bot:example.org")
    monkeypatch.setenv("MATRIX_ACCESS_TOKEN", "tok")
    monkeypatch.setenv("SURFACES_STATE_DIR", str(state))
    monkeypatch.delenv("SURFACES_CONFIG", raising=False)
    assert cli.main(["backup", "--force", str(dest)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SURFACES_STATE_DIR", "")
    monkeypatch.setenv("MATRIX_USER_ID", "bob")
    with pytest.raises(SystemExit) as info:
        cli.main(["backup", str(tmp_path)])
    assert info.value.code == 2
    assert "surfaces backup: invalid configuration" in capsys.readouterr().err
    assert cli.main(["backup"]) == 2  # DEST is required
