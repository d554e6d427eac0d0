"""``surfaces doctor``: the checklist against the fake homeserver and the reference agent
(over memory streams), plus the command's exit codes and JSON output."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import wrap_server_stream

from agent_client.reference import ReferenceAgent
from matrix_client.testing import FakeHomeserver, FakeUser
from surfaces import __version__, version_text
from surfaces.ops import doctor
from surfaces.ops.doctor import FAIL, OK, PROBE_CHAT_ID_BASE, SKIP, WARN, Check, run_checks
from surfaces.state import SCHEMA_VERSION, Store

AGENT_URL = "http://agent.test/agent_0/"


def memory_connector(agent: ReferenceAgent, seen: list[str] | None = None) -> Callable[..., Any]:
    """An agent_client connector serving ``agent`` over an in-memory stream pair."""

    async def connector(target: Any) -> trio.abc.Stream:
        if seen is not None:
            seen.append(target.url)
        client_end, server_end = trio.testing.memory_stream_pair()

        async def serve() -> None:
            try:
                async with trio.open_nursery() as nursery:
                    request = await wrap_server_stream(nursery, server_end)
                    await agent.handle(request)
            except Exception:  # the client hung up: nothing to report in a system task
                pass

        trio.lowlevel.spawn_system_task(serve)
        return client_end

    return connector


async def refused(target: Any) -> trio.abc.Stream:
    raise ConnectionRefusedError(111, "Connection refused")


class Setup:
    """A fake homeserver with the bot account, a workspace and a state dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.hs = FakeHomeserver()
        self.bot: FakeUser = self.hs.register("bot", password="bot-pw", device_id="SURFACES")
        self.workspace = tmp_path / "agents"
        self.workspace.mkdir()
        self.state = tmp_path / "state"
        self.agent = ReferenceAgent(self.workspace)
        self.probed: list[str] = []

    def environ(self, **overrides: str | None) -> dict[str, str]:
        env = {
            "MATRIX_HOMESERVER": self.hs.base_url,
            "MATRIX_USER_ID": self.bot.user_id,
            "MATRIX_ACCESS_TOKEN": self.bot.access_token,
            "MATRIX_DEVICE_ID": "SURFACES",
            "AGENT_BASE_URL": AGENT_URL,
            "SURFACES_WORKSPACE_DIR": str(self.workspace),
            "SURFACES_STATE_DIR": str(self.state),
        }
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    async def run(self, *, connector: Any = None, login: bool = False, **env: Any) -> list[Check]:
        return await run_checks(
            None,
            self.environ(**env),
            login=login,
            transport=self.hs.transport(),
            connector=connector or memory_connector(self.agent, self.probed),
        )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


async def test_all_green(setup: Setup) -> None:
    setup.state.mkdir()
    store = Store.open_sync(setup.state / "surfaces.db")
    store.close()

    checks = await setup.run()

    assert [c.name for c in checks] == [
        "config",
        "homeserver",
        "credentials",
        "device",
        "state_dir",
        "agent:default",
        "workspace:default",
    ]
    assert all(c.status == OK for c in checks), doctor.render_text(checks)
    assert not doctor.failed(checks)
    named = by_name(checks)
    assert "integrity_check" in named["state_dir"].summary
    assert "STATUS" in named["agent:default"].summary
    # The probe used a reserved chat id and sent no message (no turn on the agent).
    assert setup.probed == [f"ws://agent.test/agent_0/v1/agent_ws/{PROBE_CHAT_ID_BASE}/"]
    assert setup.agent.turns_served == 0
    # No writability probe files are left behind.
    assert list(setup.workspace.iterdir()) == []
    text = doctor.render_text(checks)
    assert "✗" not in text
    assert "7 ok, 0 warning(s), 0 failed" in text


async def test_bad_token_fails_credentials_and_skips_device(setup: Setup) -> None:
    checks = by_name(await setup.run(MATRIX_ACCESS_TOKEN="syt_not_a_real_token"))
    assert checks["credentials"].status == FAIL
    assert "M_UNKNOWN_TOKEN" in checks["credentials"].summary
    assert checks["credentials"].fix
    assert checks["device"].status == SKIP
    assert checks["homeserver"].status == OK
    assert doctor.failed(list(checks.values()))


async def test_token_of_another_user_fails(setup: Setup) -> None:
    other = setup.hs.register("mallory")
    checks = by_name(await setup.run(MATRIX_ACCESS_TOKEN=other.access_token))
    assert checks["credentials"].status == FAIL
    assert "@mallory:test.local" in checks["credentials"].summary


async def test_unreachable_agent(setup: Setup) -> None:
    checks = by_name(await setup.run(connector=refused))
    agent = checks["agent:default"]
    assert agent.status == FAIL
    assert "AGENT_UNAVAILABLE" in agent.summary
    assert agent.details["code"] == "AGENT_UNAVAILABLE"
    assert "agent.test" in agent.fix
    assert checks["credentials"].status == OK


async def test_agent_without_status_times_out(setup: Setup, autojump_clock: Any) -> None:
    silent = ReferenceAgent(setup.workspace, behaviour="no-status")
    checks = by_name(await setup.run(connector=memory_connector(silent)))
    assert checks["agent:default"].status == FAIL
    assert "AGENT_TIMEOUT(status)" in checks["agent:default"].summary


async def test_unwritable_workspace(setup: Setup) -> None:
    # Running as root, chmod does not stop writes: inject the failing write instead.
    def write(path: Path) -> None:
        if path == setup.workspace:
            raise PermissionError(13, "Permission denied", str(path))
        doctor.probe_write(path)

    checks = by_name(
        await run_checks(
            None,
            setup.environ(),
            transport=setup.hs.transport(),
            connector=memory_connector(setup.agent),
            write=write,
        )
    )
    workspace = checks["workspace:default"]
    assert workspace.status == FAIL
    assert "not writable" in workspace.summary
    assert "write access" in workspace.fix
    assert checks["state_dir"].status == OK


async def test_missing_workspace_is_a_warning_the_bot_creates_it(
    setup: Setup, tmp_path: Path
) -> None:
    checks = await setup.run(SURFACES_WORKSPACE_DIR=str(tmp_path / "nope" / "agents"))
    workspace = by_name(checks)["workspace:default"]
    assert workspace.status == WARN
    assert "does not exist yet; the bot creates it when the first file arrives" in (
        workspace.summary
    )
    assert "shares as its workspace" in workspace.fix
    assert workspace.details["creatable"] is True
    assert not (tmp_path / "nope").exists()  # doctor creates nothing
    assert not doctor.failed(checks)


async def test_first_run_on_a_host_without_the_default_workspace_root(
    setup: Setup, tmp_path: Path
) -> None:
    # The README's host quickstart: no SURFACES_WORKSPACE_DIR, so the default /agents,
    # which an unprivileged user cannot create. Simulated: a root that is not writable.
    root = tmp_path / "root"
    root.mkdir()

    def write(directory: Path) -> None:
        if directory == root:
            raise PermissionError(13, "Permission denied")
        doctor.probe_write(directory)

    checks = await run_checks(
        None,
        setup.environ(SURFACES_WORKSPACE_DIR=str(root / "agents")),
        transport=setup.hs.transport(),
        connector=memory_connector(setup.agent),
        write=write,
    )
    workspace = by_name(checks)["workspace:default"]
    assert workspace.status == WARN
    assert "cannot be created" in workspace.summary
    assert "conversations work, files to and from the agent do not" in workspace.summary
    assert "SURFACES_WORKSPACE_DIR" in workspace.fix
    assert not doctor.failed(checks)  # so `check-config && doctor && run` goes on


async def test_file_as_workspace(setup: Setup, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    checks = by_name(await setup.run(SURFACES_WORKSPACE_DIR=str(a_file)))
    assert "not a directory" in checks["workspace:default"].summary


async def test_state_dir_is_a_file_and_corrupt_database(setup: Setup, tmp_path: Path) -> None:
    a_file = tmp_path / "state-file"
    a_file.write_text("x")
    checks = by_name(await setup.run(SURFACES_STATE_DIR=str(a_file)))
    assert checks["state_dir"].status == FAIL

    setup.state.mkdir()
    (setup.state / "surfaces.db").write_bytes(b"this is not a database" * 100)
    checks = by_name(await setup.run())
    assert checks["state_dir"].status == FAIL
    assert "surfaces.db" in checks["state_dir"].summary
    assert checks["state_dir"].fix


async def test_database_newer_than_the_code_fails_as_the_bot_would(setup: Setup) -> None:
    """``surfaces run`` refuses it (exit 2); the doctor says the same, not "passes"."""
    setup.state.mkdir()
    Store.open_sync(setup.state / "surfaces.db").close()
    conn = sqlite3.connect(setup.state / "surfaces.db")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    check = by_name(await setup.run())["state_dir"]
    assert check.status == FAIL
    assert f"schema v{SCHEMA_VERSION + 1}, newer than this build" in check.summary
    assert "upgrade" in check.fix


async def test_missing_state_dir_is_fine(setup: Setup) -> None:
    checks = by_name(await setup.run())
    assert checks["state_dir"].status == OK
    assert "will create" in checks["state_dir"].summary
    assert not setup.state.exists()


async def test_homeserver_without_v1_11_warns(setup: Setup) -> None:
    setup.hs.versions = ["v1.1", "v1.9", "r0.6.1"]
    checks = await setup.run()
    named = by_name(checks)
    assert named["homeserver"].status == WARN
    assert "v1.11" in named["homeserver"].summary
    assert not doctor.failed(checks)


async def test_unreachable_homeserver(setup: Setup, autojump_clock: Any) -> None:
    def handler(request: Any) -> Any:
        raise OSError("connection refused")

    import httpx

    checks = await run_checks(
        None,
        setup.environ(),
        transport=httpx.MockTransport(handler),
        connector=memory_connector(setup.agent),
    )
    named = by_name(checks)
    assert named["homeserver"].status == FAIL
    assert named["credentials"].status == SKIP
    assert named["agent:default"].status == OK


async def test_password_only_warns_without_login(setup: Setup) -> None:
    before = len(setup.hs.requests_to("POST", "/login"))
    checks = await setup.run(MATRIX_ACCESS_TOKEN=None, MATRIX_PASSWORD="bot-pw")
    named = by_name(checks)
    assert named["credentials"].status == WARN
    assert "--login" in named["credentials"].fix
    assert named["device"].status == SKIP
    assert len(setup.hs.requests_to("POST", "/login")) == before  # no login, no new device
    assert not doctor.failed(checks)


async def test_login_uses_the_bots_device_and_saves_the_token(setup: Setup) -> None:
    checks = by_name(
        await setup.run(MATRIX_ACCESS_TOKEN=None, MATRIX_PASSWORD="bot-pw", login=True)
    )
    assert checks["credentials"].status == OK
    assert checks["device"].status == OK
    login = setup.hs.requests_to("POST", "/login")[-1]
    assert login.body["device_id"] == "SURFACES"
    db = sqlite3.connect(setup.state / "surfaces.db")
    (token,) = db.execute("SELECT value FROM kv WHERE key = 'matrix.access_token'").fetchone()
    db.close()
    assert token == setup.bot.access_token  # the fake's current token for the bot

    # The next run verifies the saved token without logging in again.
    logins = len(setup.hs.requests_to("POST", "/login"))
    checks = by_name(await setup.run(MATRIX_ACCESS_TOKEN=None, MATRIX_PASSWORD="bot-pw"))
    assert checks["credentials"].status == OK
    assert "state DB" in checks["credentials"].summary
    assert len(setup.hs.requests_to("POST", "/login")) == logins


async def test_login_with_a_wrong_password_fails(setup: Setup) -> None:
    checks = by_name(await setup.run(MATRIX_ACCESS_TOKEN=None, MATRIX_PASSWORD="wrong", login=True))
    assert checks["credentials"].status == FAIL
    assert "MATRIX_PASSWORD" in checks["credentials"].fix


async def test_device_mismatch_warns(setup: Setup) -> None:
    checks = by_name(await setup.run(MATRIX_DEVICE_ID="OTHERDEVICE"))
    assert checks["device"].status == WARN
    assert "MATRIX_DEVICE_ID=SURFACES" in checks["device"].fix

    setup.state.mkdir()
    store = Store.open_sync(setup.state / "surfaces.db")
    store._conn.execute("INSERT INTO kv (key, value) VALUES ('matrix.device_id', 'OLDDEVICE')")
    store.close()
    checks = by_name(await setup.run())
    assert checks["device"].status == WARN
    assert "OLDDEVICE" in checks["device"].summary


async def test_invalid_config_skips_the_rest(setup: Setup) -> None:
    checks = await setup.run(MATRIX_HOMESERVER="not a url")
    assert checks[0].name == "config"
    assert checks[0].status == FAIL
    assert "matrix.homeserver" in checks[0].summary
    assert all(c.status == SKIP for c in checks[1:])


# ---------------------------------------------------------------- the command (sync)


def test_main_exit_0_when_green(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code = doctor.main(
        [],
        setup.environ(),
        transport=setup.hs.transport(),
        connector=memory_connector(setup.agent),
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"surfaces doctor — {version_text()}\n✓ config:")


def test_main_exit_1_and_json_on_failure(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code = doctor.main(
        ["--json"],
        setup.environ(MATRIX_ACCESS_TOKEN="bad"),
        transport=setup.hs.transport(),
        connector=refused,
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["ok"] is False
    assert result["version"] == __version__
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert statuses["credentials"] == "fail"
    assert statuses["agent:default"] == "fail"
    assert statuses["workspace:default"] == "ok"
    assert all(c["fix"] for c in result["checks"] if c["status"] == "fail")
    assert "bad" not in json.dumps(result)  # the token is never printed


def test_main_exit_1_on_invalid_config(capsys: pytest.CaptureFixture[str]) -> None:
    code = doctor.main([], {})
    out = capsys.readouterr().out
    assert code == 1
    assert "✗ config:" in out


def test_cli_dispatches_doctor(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    from surfaces import cli

    for key in ("MATRIX_HOMESERVER", "MATRIX_USER_ID", "SURFACES_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["doctor", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_json_mode_writes_only_json_to_stdout(
    setup: Setup, capfd: pytest.CaptureFixture[str]
) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    code = doctor.main(
        ["--json"],
        setup.environ(),
        transport=httpx.MockTransport(unreachable),
        connector=refused,
    )
    out, err = capfd.readouterr()
    assert code == 1
    assert json.loads(out)["ok"] is False  # the whole of stdout is one JSON document
    logged = [json.loads(line) for line in err.splitlines()]
    assert logged  # the client's retry warnings went to stderr, as JSON lines
    assert all(record["level"] == "warning" for record in logged)
