"""``surfaces healthcheck`` against the real ops server, at the configured address."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from surfaces.metrics import Metrics
from surfaces.ops import HealthState, serve_ops
from surfaces.ops.healthcheck import main, probe_address

BASE_ENV = {
    "MATRIX_HOMESERVER": "https://matrix.example.org",
    "MATRIX_USER_ID": "@bot:example.org",
    "MATRIX_ACCESS_TOKEN": "tok",
}


class Ops:
    def __init__(self, health: HealthState, port: int) -> None:
        self.health = health
        self.port = port

    async def check(self, argv: list[str], **env: str) -> int:
        """Run the (blocking) command in a thread while the server serves."""
        run = functools.partial(main, argv, {**BASE_ENV, **env})
        with trio.fail_after(10):
            return await trio.to_thread.run_sync(run)


@pytest.fixture
async def ops() -> AsyncIterator[Ops]:
    health = HealthState(stale_after_s=60)
    health.sync_loop_started()
    health.sync_succeeded()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_ops, "0.0.0.0", 0, Metrics(version="t"), health)
        yield Ops(health, port)
        nursery.cancel_scope.cancel()


async def test_healthy_at_the_port_from_the_environment(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    # The image sets SURFACES_OPS__HOST=0.0.0.0: the check connects to loopback.
    env = {"SURFACES_OPS__ENABLED": "true", "SURFACES_OPS__HOST": "0.0.0.0"}
    assert await ops.check([], SURFACES_OPS__PORT=str(ops.port), **env) == 0
    # (the server's own log lines share the captured stdout here: structlog's default)
    assert "surfaces healthcheck: healthy (/healthz 200)\n" in capsys.readouterr().out


async def test_unhealthy_names_the_failed_check(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.health.sync_loop_stopped()
    env = {"SURFACES_OPS__ENABLED": "true", "SURFACES_OPS__PORT": str(ops.port)}
    assert await ops.check([], **env) == 1
    assert "surfaces healthcheck: unhealthy (/healthz 503): failed sync\n" in (
        capsys.readouterr().out
    )


async def test_address_from_the_yaml_file(
    ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "surfaces.yaml"
    config.write_text(f'ops:\n  enabled: true\n  host: "127.0.0.1"\n  port: {ops.port}\n')
    assert await ops.check(["--config", str(config)]) == 0
    assert await ops.check([], SURFACES_CONFIG=str(config)) == 0
    # the environment still wins over the file, as for the bot
    assert await ops.check([], SURFACES_CONFIG=str(config), SURFACES_OPS__PORT="1") == 1
    assert "cannot connect to 127.0.0.1:1" in capsys.readouterr().out


async def test_nothing_listening_disabled_or_invalid_config_is_unhealthy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:  # a port that is surely closed: bound, not listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        env = {**BASE_ENV, "SURFACES_OPS__ENABLED": "true", "SURFACES_OPS__PORT": str(port)}
        code = await trio.to_thread.run_sync(main, [], env)
    assert code == 1
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().out
    assert await trio.to_thread.run_sync(main, [], BASE_ENV) == 1
    assert "the ops server is disabled" in capsys.readouterr().out
    assert await trio.to_thread.run_sync(main, [], {**BASE_ENV, "MATRIX_USER_ID": "bob"}) == 1
    captured = capsys.readouterr()
    assert "unhealthy: invalid configuration" in captured.out
    assert "matrix.user_id" in captured.err
    assert main(["--nope"], BASE_ENV) == 1  # never Docker's reserved 2


async def test_no_answer_within_the_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts (in the kernel), never answers
    port = listener.getsockname()[1]
    env = {**BASE_ENV, "SURFACES_OPS__ENABLED": "true", "SURFACES_OPS__PORT": str(port)}
    try:
        code = await trio.to_thread.run_sync(main, ["--timeout", "0.2"], env)
    finally:
        listener.close()
    assert code == 1
    assert "no answer from 127.0.0.1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("host", "expected"),
    [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "::1"), ("10.0.0.5", "10.0.0.5")],
)
def test_probe_address(host: str, expected: str) -> None:
    assert probe_address(host) == expected
