"""The doctor's checks of local files: the state directory and database, workspaces.

Blocking (file system, SQLite): the doctor calls them through ``trio.to_thread``.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs

from surfaces.config import AgentSpec, Config
from surfaces.ops._checklist import FAIL, OK, WARN, Check
from surfaces.session import DEVICE_KEY, TOKEN_KEY
from surfaces.state import DB_NAME, SCHEMA_VERSION, Store

WriteProbe = Callable[[Path], None]


def probe_write(directory: Path) -> None:
    """Create and delete a file in ``directory`` (raises OSError if that fails).

    An actual write, not ``os.access``: root passes ``os.access`` everywhere, and a
    read-only mount only shows on a write.
    """
    probe = directory / f".surfaces-doctor-{uuid.uuid4().hex[:8]}"
    probe.write_bytes(b"")
    probe.unlink()


@attrs.frozen
class StateInfo:
    check: Check
    stored_token: str | None = attrs.field(default=None, repr=False)
    stored_device: str | None = None
    db_path: Path | None = None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_state_dir(config: Config, write: WriteProbe = probe_write) -> StateInfo:
    """Blocking (file system, SQLite): call through ``trio.to_thread``."""
    state = Path(config.state_dir).expanduser().resolve()
    fix_dir = f"set SURFACES_STATE_DIR to a writable directory (now {state})"
    if state.exists() and not state.is_dir():
        return StateInfo(Check("state_dir", FAIL, f"{state} is not a directory", fix_dir))
    if not state.exists():
        parent = _nearest_existing(state)
        if not parent.is_dir():
            return StateInfo(
                Check("state_dir", FAIL, f"{state} cannot be created ({parent} is a file)", fix_dir)
            )
        try:
            write(parent)
        except OSError as exc:
            return StateInfo(
                Check("state_dir", FAIL, f"{state} cannot be created: {parent}: {exc}", fix_dir)
            )
        return StateInfo(
            Check("state_dir", OK, f"{state} does not exist yet; the bot will create it"),
            db_path=state / DB_NAME,
        )
    try:
        write(state)
    except OSError as exc:
        return StateInfo(Check("state_dir", FAIL, f"{state} is not writable: {exc}", fix_dir))
    db = state / DB_NAME
    if not db.exists():
        return StateInfo(
            Check("state_dir", OK, f"{state} writable; no database yet (first start)"), db_path=db
        )
    try:
        info = Store.inspect(db, keys=(TOKEN_KEY, DEVICE_KEY))
    except sqlite3.Error as exc:
        return StateInfo(
            Check(
                "state_dir",
                FAIL,
                f"{db} cannot be read: {exc}",
                "stop the bot, move the file aside (keep it for analysis) and restart: the bot "
                "rebuilds chats and bindings from Matrix",
            ),
            db_path=db,
        )
    result, schema, kv = info.integrity, info.schema_version, info.values
    if result != ["ok"]:
        return StateInfo(
            Check(
                "state_dir",
                FAIL,
                f"{db} is damaged: integrity_check: {'; '.join(result[:3])}",
                "stop the bot, restore a backup or move the file aside; the bot rebuilds from "
                "Matrix",
                {"integrity_check": result[:20]},
            ),
            db_path=db,
        )
    if schema is not None and schema > SCHEMA_VERSION:  # the bot refuses it (exit 2)
        return StateInfo(
            Check(
                "state_dir",
                FAIL,
                f"{db} has schema v{schema}, newer than this build knows (v{SCHEMA_VERSION})",
                "upgrade surfaces to the version that wrote it, or restore a matching backup",
                {"schema_version": schema, "known": SCHEMA_VERSION},
            ),
            db_path=db,
        )
    return StateInfo(
        Check(
            "state_dir",
            OK,
            f"{state} writable; {DB_NAME} passes integrity_check (schema v{schema})",
            details={"path": str(state), "schema_version": schema},
        ),
        stored_token=kv.get(TOKEN_KEY),
        stored_device=kv.get(DEVICE_KEY),
        db_path=db,
    )


def check_workspace(spec: AgentSpec, write: WriteProbe = probe_write) -> Check:
    """Blocking (file system): call through ``trio.to_thread``.

    A missing workspace is a warning, not a failure: conversations work without it,
    only files do not (the bot creates the directory when the first file arrives, if
    it can). That is the usual state of a first run on a host, where the default
    ``/agents`` does not exist; in the image it is a volume.
    """
    name = f"workspace:{spec.id}"
    path = Path(spec.workspace_path).expanduser()
    fix_env = "(SURFACES_WORKSPACE_DIR or the registry's workspace_path)"
    if not path.exists():
        return _missing_workspace(name, spec, path, fix_env, write)
    if not path.is_dir():
        return Check(name, FAIL, f"{path} is not a directory", f"fix the path {fix_env}")
    try:
        write(path)
    except OSError as exc:
        return Check(
            name,
            FAIL,
            f"{path} is not writable: {exc.strerror or exc}",
            f"give the bot's user write access to {path} (incoming files are stored there)",
        )
    return Check(name, OK, f"{path} exists and is writable")


def _missing_workspace(
    name: str, spec: AgentSpec, path: Path, fix_env: str, write: WriteProbe
) -> Check:
    shares = f"the directory agent {spec.id!r} shares as its workspace"
    parent = _nearest_existing(path)
    problem: str | None = None
    if not parent.is_dir():
        problem = f"{parent} is not a directory"
    else:
        try:
            write(parent)
        except OSError as exc:
            problem = f"{parent} is not writable: {exc.strerror or exc}"
    if problem is None:
        return Check(
            name,
            WARN,
            f"{path} does not exist yet; the bot creates it when the first file arrives",
            f"make sure it is {shares}, or files will not reach the agent {fix_env}",
            {"path": str(path), "creatable": True},
        )
    return Check(
        name,
        WARN,
        f"{path} does not exist and cannot be created ({problem}): conversations work, "
        "files to and from the agent do not",
        f"point the path at {shares} {fix_env}, or create {path} and give the bot's user "
        "write access to it",
        {"path": str(path), "creatable": False},
    )
