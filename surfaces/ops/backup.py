"""``surfaces backup [--config PATH | --state-dir DIR] [--force] DEST``.

A consistent copy of the state database, safe while the bot runs, with SQLite's
online backup API (``sqlite3.Connection.backup``): the image has no ``sqlite3``
binary, and copying the file itself is only consistent with the bot stopped (the
database is in WAL mode: recent commits live in ``surfaces.db-wal``).

Why it is safe beside the running bot: the copy is one backup step, i.e. one read
transaction on a read-only connection. In WAL mode a reader never blocks a writer,
so the bot keeps committing; its checkpoints are PASSIVE, so they never wait for us
either (they just cannot reclaim the WAL past our snapshot until we are done).

What a backup guarantees:

- it is a snapshot of one moment (one transaction), in a single self-contained file
  (journal mode DELETE: no ``-wal`` next to it is needed);
- it passes ``PRAGMA integrity_check`` and is a Surfaces database (it has a schema
  version), checked on the copy before it is put in place;
- it appears at ``DEST`` atomically (a temporary file in the same directory, fsynced,
  then renamed), with mode 0600 (it holds the bot's access token);
- an existing ``DEST`` is never overwritten without ``--force``. When ``DEST`` is a
  directory, the file is ``DEST/surfaces-<UTC time>.db``.

The bot's end-to-end encryption state (``crypto_*`` tables) is in the copy, pickled
with the pickle key, which is *not*: the command reminds the operator to keep the key
file (``<state_dir>/pickle.key``) too, when there is one.

Exit codes: 0 the backup was written and verified; 1 it failed (nothing was written
at ``DEST``); 2 bad arguments or configuration, ``DEST`` exists (no ``--force``), or
not run as the database's owner (SQLite may create ``surfaces.db-shm`` beside the
database, which must stay the bot's).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import attrs

from surfaces.config import EXIT_CONFIG, load_config_or_exit
from surfaces.i18n import human_size
from surfaces.ops._local_checks import DB_NAME
from surfaces.session.pickle_key import PICKLE_KEY_FILE
from surfaces.state import Store

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "BackupError", "BackupResult", "backup_database", "main"]

EXIT_FAILED = 1
EXIT_USAGE = EXIT_CONFIG
#: How long opening the snapshot may wait for a lock (only recovery holds one long).
BUSY_TIMEOUT_S = 10.0


class BackupError(Exception):
    """The backup was not made; the message says why. ``exit_code`` is 1 or 2."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@attrs.frozen
class BackupResult:
    path: Path
    size: int
    schema_version: int
    seconds: float


def backup_database(source: Path, dest: Path, *, force: bool = False) -> BackupResult:
    """Copy the database at ``source`` to ``dest`` (see the module docstring).

    Blocking (SQLite, file system); a command-line tool calls it directly.

    Raises:
        BackupError: nothing was written at ``dest``.
    """
    started = time.monotonic()
    source = source.expanduser()
    if not source.is_file():
        raise BackupError(
            f"no state database at {source} (is SURFACES_STATE_DIR / state_dir right?)"
        )
    _check_owner(source)
    dest = dest.expanduser()
    if dest.is_dir():
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = dest / f"surfaces-{stamp}.db"
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists; use --force to replace it", EXIT_USAGE)
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory", EXIT_USAGE)
    if dest.resolve() == source.resolve():
        raise BackupError(f"{dest} is the database itself", EXIT_USAGE)

    temporary = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _create_private(temporary)
        schema_version = _copy_and_verify(source, temporary)
        _fsync(temporary)
        _put_in_place(temporary, dest, force=force)
        _fsync(dest.parent, best_effort=True)
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror or exc}")
    finally:
        temporary.unlink(missing_ok=True)
    return BackupResult(dest, dest.stat().st_size, schema_version, time.monotonic() - started)


def _check_owner(source: Path) -> None:
    owner = source.stat().st_uid
    if hasattr(os, "geteuid") and os.geteuid() != owner:
        raise BackupError(
            f"run this as the owner of {source} (uid {owner}), e.g. with "
            "`sudo -u <the bot's user>`: SQLite may create files beside the database, "
            "and they must stay the bot's",
            EXIT_USAGE,
        )


def _create_private(path: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    os.close(os.open(path, flags, 0o600))
    os.chmod(path, 0o600)  # whatever the umask: the copy holds the bot's access token


def _copy_and_verify(source: Path, target: Path) -> int:
    """Copy in one backup step (one snapshot), make it standalone, check it."""
    uri = f"file:{quote(str(source.resolve()))}?mode=ro"
    try:
        src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(str(target), isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: everything in one step
                dst.execute("PRAGMA journal_mode=DELETE")
                problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
                if problems != ["ok"]:
                    raise BackupError(
                        f"the copy of {source} fails integrity_check: {'; '.join(problems[:3])}"
                        " (the database itself may be damaged: see `surfaces doctor`)"
                    )
                try:
                    (version,) = dst.execute("SELECT MAX(version) FROM schema_version").fetchone()
                except sqlite3.OperationalError:
                    version = None
                if not isinstance(version, int):
                    raise BackupError(f"{source} is not a Surfaces state database")
                # Restored, the copy's encryption state is older than the world's:
                # the bot sees this mark and starts that identity over (a new device).
                stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                dst.execute(
                    "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                    (Store.BACKUP_MARK_KEY, stamp),
                )
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}")
    return version


def _put_in_place(temporary: Path, dest: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, dest)
        return
    try:
        # A hard link fails if dest appeared meanwhile: no-clobber and atomic.
        os.link(temporary, dest)
    except FileExistsError:
        raise BackupError(f"{dest} exists; use --force to replace it", EXIT_USAGE)
    except OSError:
        # A file system without hard links: the check above is all we can do.
        if dest.exists():
            raise BackupError(f"{dest} exists; use --force to replace it", EXIT_USAGE)
        os.replace(temporary, dest)


def _fsync(path: Path, *, best_effort: bool = False) -> None:
    """fsync a file, or a directory (its entries: the rename), where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if best_effort:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not best_effort:
            raise
    finally:
        os.close(fd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces backup",
        description="Copy the state database consistently (also while the bot runs), "
        "verify the copy and put it at DEST atomically, mode 0600. Exit 0 done, 1 failed, "
        "2 bad arguments or configuration, or DEST exists.",
    )
    parser.add_argument("dest", metavar="DEST", help="the backup file, or a directory for it")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="PATH", help="YAML config (default: $SURFACES_CONFIG)")
    source.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the state directory, instead of reading the configuration",
    )
    parser.add_argument("--force", action="store_true", help="replace DEST if it exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``surfaces backup``; returns the exit code."""
    prog = "surfaces backup"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.state_dir is not None:
        state_dir = Path(args.state_dir)
    else:
        state_dir = Path(load_config_or_exit(args.config, prog=prog).state_dir)
    dest = Path(args.dest)
    if args.dest.endswith(("/", os.sep)) and not dest.is_dir():
        # ``Path`` drops the slash: without this, ``backups/`` would become a file.
        print(f"{prog}: {args.dest} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = backup_database(state_dir / DB_NAME, dest, force=args.force)
    except BackupError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return error.exit_code
    print(
        f"{prog}: {result.path} ({human_size(result.size)}, schema v{result.schema_version}, "
        f"integrity ok) in {result.seconds:.2f} s"
    )
    key_file = state_dir / PICKLE_KEY_FILE
    if key_file.exists():
        # The copy holds the bot's encryption keys, pickled with this key: without it
        # a restored database starts over as a new device (docs/operations.md).
        print(
            f"{prog}: the encryption keys in it open only with {key_file}: keep a copy of "
            "that file too, apart from the database backups"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
