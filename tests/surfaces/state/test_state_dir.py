"""The state directory (issue 13 §6): private modes, one bot at a time, one-line errors."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from surfaces.state import LOCK_NAME, StateDir, StateError, StateLockedError, Store
from surfaces.state._schema import MIGRATIONS


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as in many containers: the modes must not depend on it."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_created_0700_and_the_database_files_0600(tmp_path, open_umask) -> None:
    state = StateDir.acquire(tmp_path / "deep" / "state")
    try:
        store = Store.open_sync(state.db_path)
        try:
            store._conn.execute("INSERT INTO kv (key, value) VALUES ('k', 'v')")
            files = sorted(p.name for p in state.path.iterdir())
            assert files == sorted([LOCK_NAME, "surfaces.db", "surfaces.db-shm", "surfaces.db-wal"])
            assert mode(state.path) == 0o700
            for name in files:
                assert mode(state.path / name) == 0o600, name
        finally:
            store.close()
    finally:
        state.close()


def test_an_existing_database_is_tightened_to_0600(tmp_path, open_umask) -> None:
    db = tmp_path / "surfaces.db"
    Store.open_sync(db).close()
    db.chmod(0o644)
    Store.open_sync(db).close()
    assert mode(db) == 0o600


def test_a_second_holder_is_refused_naming_the_lock_and_the_pid(tmp_path) -> None:
    first = StateDir.acquire(tmp_path)
    try:
        with pytest.raises(StateLockedError) as refused:
            StateDir.acquire(tmp_path)
        message = str(refused.value)
        assert str(tmp_path / LOCK_NAME) in message
        assert f"pid {os.getpid()}" in message
    finally:
        first.close()
    StateDir.acquire(tmp_path).close()  # released: the next one gets it


@pytest.mark.parametrize("where", ["state_dir", "parent"])
def test_a_state_dir_that_is_a_file_is_one_line(tmp_path, where) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    target = blocker if where == "state_dir" else blocker / "sub"
    with pytest.raises(StateError) as error:
        StateDir.acquire(target)
    assert "\n" not in str(error.value)
    assert str(target) in str(error.value)


def test_a_newer_database_or_a_non_database_is_a_state_error(tmp_path) -> None:
    db = tmp_path / "surfaces.db"
    Store.open_sync(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 5,))
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer than this build"):
        Store.open_sync(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=r"junk\.db"):
        Store.open_sync(junk)
