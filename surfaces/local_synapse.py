"""A throwaway Synapse homeserver on loopback, for the e2e tests and ``surfaces demo``.

Nothing is installed at run time: the homeserver is the installed ``matrix-synapse``
package, started as ``sys.executable -m synapse.app.homeserver``. The whole
``homeserver.yaml`` is written here (``--generate-config`` costs a second process
start), together with the signing key, so a cold start is one Python process that
answers ``/_matrix/client/versions`` a couple of seconds later.

The server is offline by construction: it listens on ``127.0.0.1`` only, serves the
client API (which includes media and ``/_synapse/admin``) and no federation, trusts
no key servers, reports no stats and keeps everything (SQLite database, media, logs)
in one state directory.

Two rate-limit profiles exist because tests need both: ``"lifted"`` raises every
``rc_*`` limit Synapse knows so tests and benchmarks never see a 429, and
``"default"`` keeps Synapse's own defaults (``rc_message`` 0.2/s, burst 10) so the
client's 429 handling meets real 429s.

Async use (trio)::

    async with LocalSynapse.running() as hs:
        alice = await hs.register("alice", "secret-password")
        ...  # talk to hs.base_url with alice.access_token

Sync use (e.g. a session-scoped pytest fixture, which cannot live in a trio run)::

    with LocalSynapse.running_sync(ratelimits="default") as hs:
        bob = hs.register_sync("bob", "secret-password")

Users come from the shared-secret registration admin API, so public registration
stays off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import attrs
import httpx
import structlog
import trio
import yaml

__all__ = [
    "LocalSynapse",
    "RatelimitProfile",
    "RegisteredUser",
    "SynapseError",
    "SynapseStartError",
    "free_loopback_port",
]

log = structlog.get_logger(__name__)

RatelimitProfile = Literal["lifted", "default"]

SERVER_NAME = "localhost"

# A limit no test or benchmark reaches: Synapse has no global "off" switch for its
# rate limiters, but a token bucket this large never runs dry.
_LIFTED = {"per_second": 100_000, "burst_count": 1_000_000}

# Every rc_* key Synapse 1.163 reads (synapse/config/ratelimiting.py). Keys it does
# not know are ignored by Synapse, so a newer or older version still starts.
_LIFTED_RATELIMITS: dict[str, Any] = {
    "rc_message": _LIFTED,
    "rc_registration": _LIFTED,
    "rc_registration_token_validity": _LIFTED,
    "rc_login": {"address": _LIFTED, "account": _LIFTED, "failed_attempts": _LIFTED},
    "rc_admin_redaction": _LIFTED,
    "rc_joins": {"local": _LIFTED, "remote": _LIFTED},
    "rc_joins_per_room": _LIFTED,
    "rc_3pid_validation": _LIFTED,
    "rc_invites": {"per_room": _LIFTED, "per_user": _LIFTED, "per_issuer": _LIFTED},
    "rc_third_party_invite": _LIFTED,
    "rc_media_create": _LIFTED,
    "rc_presence": {"per_user": _LIFTED},
    "rc_delayed_event_mgmt": _LIFTED,
    "rc_room_creation": _LIFTED,
    "rc_reports": _LIFTED,
    "rc_user_directory": _LIFTED,
    "rc_profile": _LIFTED,
}

_STOP_GRACE_S = 10.0
_KILL_WAIT_S = 5.0
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class SynapseError(RuntimeError):
    """A request to the local homeserver's admin API failed."""


class SynapseStartError(RuntimeError):
    """Synapse exited early or did not answer ``/versions`` before the deadline.

    The message carries the tail of Synapse's log files, which is where the reason is.
    """


@attrs.frozen
class RegisteredUser:
    """A user made with the shared-secret registration API, logged in on one device."""

    user_id: str
    access_token: str = attrs.field(repr=False)
    device_id: str
    password: str = attrs.field(repr=False)
    localpart: str


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The usual bind-to-0 trick: there is a small window in which another process may
    take the port; Synapse then exits early and the start reports the bind error.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signing_key_line() -> str:
    # Synapse's signing key file format (signedjson.key.write_signing_keys):
    # "<algorithm> <version> <unpadded base64 of the 32-byte ed25519 seed>".
    # Writing it here saves starting Synapse once with --generate-keys.
    seed = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"


def _registration_mac(secret: str, nonce: str, username: str, password: str, *, admin: bool) -> str:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    for part in (nonce, username, password):
        mac.update(part.encode("utf-8"))
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SynapseError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not isinstance(body, dict):
        raise SynapseError(f"{what}: unexpected body {body!r:.200}")
    return body


@attrs.define(eq=False)
class LocalSynapse:
    """One Synapse process on ``127.0.0.1:<port>`` with its state in ``state_dir``.

    Build it with :meth:`create` (writes the configuration, starts nothing), then
    start it with :meth:`start_sync` or use one of the context managers
    :meth:`running` (trio) and :meth:`running_sync`, which also stop it and remove a
    temporary state directory. A given ``state_dir`` is kept, including the signing
    key and the registration secret, so a demo can restart on the same database.

    Attributes:
        state_dir: database, media store, logs, config and keys live here.
        port: the loopback port of the single HTTP listener.
        ratelimits: ``"lifted"`` or ``"default"`` (see the module docstring).
        startup_deadline_s: how long a start may take before it counts as failed.
        startup_s: seconds from process start to ``/versions`` answering, once started.
    """

    state_dir: Path
    port: int
    ratelimits: RatelimitProfile
    registration_shared_secret: str = attrs.field(repr=False)
    startup_deadline_s: float = 60.0
    max_upload_size: str = "50M"
    startup_s: float | None = None
    _owns_state_dir: bool = False
    _auto_port: bool = False
    _popen: subprocess.Popen[bytes] | None = attrs.field(default=None, repr=False)
    _trio_process: trio.Process | None = attrs.field(default=None, repr=False)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        ratelimits: RatelimitProfile = "lifted",
        port: int | None = None,
        startup_deadline_s: float = 60.0,
    ) -> LocalSynapse:
        """Prepare a state directory and write ``homeserver.yaml``; start nothing.

        Args:
            state_dir: where to keep everything; ``None`` makes a temporary directory
                that :meth:`cleanup` (and the context managers) delete.
            ratelimits: ``"lifted"`` (no 429s in practice) or ``"default"``.
            port: loopback port to listen on; ``None`` picks a free one.
            startup_deadline_s: limit for one start, read by the start methods.
        """
        if ratelimits not in ("lifted", "default"):
            raise ValueError(f"ratelimits must be 'lifted' or 'default', not {ratelimits!r}")
        owns = state_dir is None
        path = Path(tempfile.mkdtemp(prefix="surfaces-synapse-") if owns else state_dir)
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        secret_file = path / "registration_shared_secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        hs = cls(
            state_dir=path,
            port=port if port is not None else free_loopback_port(),
            ratelimits=ratelimits,
            registration_shared_secret=secret_file.read_text().strip(),
            startup_deadline_s=startup_deadline_s,
            owns_state_dir=owns,
            auto_port=port is None,
        )
        hs._write_files()
        return hs

    @property
    def server_name(self) -> str:
        """The homeserver's name: user ids look like ``@alice:localhost``."""
        return SERVER_NAME

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the client-server API base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above)."""
        return self.state_dir / "homeserver.log"

    @property
    def console_path(self) -> Path:
        """Synapse's stdout/stderr (start-up errors land here before logging is set up)."""
        return self.state_dir / "console.log"

    @property
    def pid(self) -> int | None:
        """Process id of the running Synapse, or ``None`` when it is not running."""
        process = self._popen or self._trio_process
        return process.pid if process is not None else None

    def is_running(self) -> bool:
        """True while the Synapse process started by this object is alive."""
        process = self._popen or self._trio_process
        return process is not None and process.poll() is None

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{SERVER_NAME}"

    def homeserver_config(self) -> dict[str, Any]:
        """The configuration written to ``homeserver.yaml`` (a plain dict)."""
        d = self.state_dir
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # "client" includes the media repository and /_synapse/admin.
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log_config.yaml"),
            "media_store_path": str(d / "media_store"),
            "max_upload_size": self.max_upload_size,
            "url_preview_enabled": False,
            "signing_key_path": str(d / "signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "enable_registration": False,
            "report_stats": False,
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            # Fast password hashing: these are throwaway accounts.
            "bcrypt_rounds": 4,
        }
        if self.ratelimits == "lifted":
            config.update(_LIFTED_RATELIMITS)
        return config

    def _write_files(self) -> None:
        d = self.state_dir
        (d / "media_store").mkdir(exist_ok=True)
        key = d / "signing.key"
        if not key.exists():
            key.write_text(_signing_key_line())
            key.chmod(0o600)
        log_config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }
        (d / "log_config.yaml").write_text(yaml.safe_dump(log_config, sort_keys=False))
        self.config_path.write_text(yaml.safe_dump(self.homeserver_config(), sort_keys=False))
        self.config_path.chmod(0o600)

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "--config-path",
            str(self.config_path),
        ]

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of Synapse's console output and log, for error messages."""
        parts = []
        for path in (self.console_path, self.log_path):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts) or "(no log output)"

    def _start_failed(self, reason: str) -> SynapseStartError:
        return SynapseStartError(f"Synapse on {self.base_url} {reason}\n{self.log_tail()}")

    # -- async (trio) -----------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        ratelimits: RatelimitProfile = "lifted",
        port: int | None = None,
        startup_deadline_s: float = 60.0,
    ) -> AsyncIterator[LocalSynapse]:
        """Start Synapse, yield it once ``/versions`` answers, stop it on exit.

        Stopping happens even when the body raises or is cancelled: SIGTERM, a
        bounded wait, then SIGKILL. A temporary state directory is removed.

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        hs = cls.create(
            state_dir, ratelimits=ratelimits, port=port, startup_deadline_s=startup_deadline_s
        )
        try:
            await hs.start()
            yield hs
        finally:
            with trio.CancelScope(shield=True):
                await hs.stop()
            hs.cleanup()

    async def start(self) -> None:
        """Start the process and wait until ``/versions`` answers (async variant).

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        for attempt in range(_PORT_ATTEMPTS):
            try:
                return await self._start_once()
            except SynapseStartError:
                if not self._pick_another_port(attempt):
                    raise

    async def _start_once(self) -> None:
        if self.pid is not None:
            raise RuntimeError("Synapse is already running")
        began = time.monotonic()
        with self.console_path.open("wb") as console:
            self._trio_process = await trio.lowlevel.open_process(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=str(self.state_dir),
            )
        try:
            await self._wait_ready(self._trio_process)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.stop()
            raise
        self.startup_s = time.monotonic() - began
        log.info("local_synapse_started", base_url=self.base_url, startup_s=self.startup_s)

    async def _wait_ready(self, process: trio.Process) -> None:
        with trio.move_on_after(self.startup_deadline_s):
            async with httpx.AsyncClient(timeout=2.0) as http:
                while process.poll() is None:
                    with contextlib.suppress(httpx.TransportError):
                        r = await http.get(self.base_url + "/_matrix/client/versions")
                        if r.status_code == 200:
                            return
                    await trio.sleep(_POLL_INTERVAL_S)
                raise self._start_failed(f"exited with code {process.returncode}")
        raise self._start_failed(f"did not answer /versions within {self.startup_deadline_s:g} s")

    async def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Safe to call when not running."""
        process, self._trio_process = self._trio_process, None
        if process is None:
            if self._popen is not None:  # started with start_sync()
                await trio.to_thread.run_sync(self.stop_sync)
            return
        if process.poll() is None:
            process.terminate()
            with trio.move_on_after(_STOP_GRACE_S):
                await process.wait()
            if process.poll() is None:
                log.warning("local_synapse_kill", pid=process.pid)
                process.kill()
                with trio.move_on_after(_KILL_WAIT_S):
                    await process.wait()
        log.info("local_synapse_stopped", base_url=self.base_url, returncode=process.returncode)

    async def register(
        self,
        username: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """Create a user with the shared-secret admin API and return its login.

        Args:
            username: the localpart (``alice`` for ``@alice:localhost``).
        Raises:
            SynapseError: Synapse refused (e.g. the user exists already).
        """
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30.0) as http:
            url = "/_synapse/admin/v1/register"
            nonce = _check(await http.get(url), "register nonce")["nonce"]
            body = self._registration_body(nonce, username, password, admin, displayname)
            reply = _check(await http.post(url, json=body), f"register {username}")
        return self._registered(reply, username, password)

    async def lift_ratelimit(self, admin_token: str, user_id: str) -> None:
        """Exempt one user from message rate limits (admin API override)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30.0) as http:
            response = await http.post(
                self._override_url(user_id),
                json={"messages_per_second": 0, "burst_count": 0},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
        _check(response, f"override_ratelimit {user_id}")

    # -- sync -------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running_sync(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        ratelimits: RatelimitProfile = "lifted",
        port: int | None = None,
        startup_deadline_s: float = 60.0,
    ) -> Iterator[LocalSynapse]:
        """Like :meth:`running`, without trio: for session fixtures and scripts."""
        hs = cls.create(
            state_dir, ratelimits=ratelimits, port=port, startup_deadline_s=startup_deadline_s
        )
        try:
            hs.start_sync()
            yield hs
        finally:
            hs.stop_sync()
            hs.cleanup()

    def start_sync(self) -> None:
        """Start the process and block until ``/versions`` answers.

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        for attempt in range(_PORT_ATTEMPTS):
            try:
                return self._start_sync_once()
            except SynapseStartError:
                if not self._pick_another_port(attempt):
                    raise

    def _start_sync_once(self) -> None:
        if self.pid is not None:
            raise RuntimeError("Synapse is already running")
        began = time.monotonic()
        with self.console_path.open("wb") as console:
            self._popen = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=str(self.state_dir),
            )
        try:
            self._wait_ready_sync(self._popen, deadline=began + self.startup_deadline_s)
        except BaseException:
            self.stop_sync()
            raise
        self.startup_s = time.monotonic() - began
        log.info("local_synapse_started", base_url=self.base_url, startup_s=self.startup_s)

    def _wait_ready_sync(self, process: subprocess.Popen[bytes], *, deadline: float) -> None:
        with httpx.Client(timeout=2.0) as http:
            while process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    r = http.get(self.base_url + "/_matrix/client/versions")
                    if r.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise self._start_failed(
                        f"did not answer /versions within {self.startup_deadline_s:g} s"
                    )
                time.sleep(_POLL_INTERVAL_S)
        raise self._start_failed(f"exited with code {process.returncode}")

    def stop_sync(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Safe to call when not running.

        Blocks; from trio use :meth:`stop`.
        """
        process, self._popen = self._popen, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("local_synapse_kill", pid=process.pid)
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(_KILL_WAIT_S)
        log.info("local_synapse_stopped", base_url=self.base_url, returncode=process.returncode)

    def register_sync(
        self,
        username: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """Blocking :meth:`register`."""
        with httpx.Client(base_url=self.base_url, timeout=30.0) as http:
            url = "/_synapse/admin/v1/register"
            nonce = _check(http.get(url), "register nonce")["nonce"]
            body = self._registration_body(nonce, username, password, admin, displayname)
            reply = _check(http.post(url, json=body), f"register {username}")
        return self._registered(reply, username, password)

    def cleanup(self) -> None:
        """Delete the state directory if :meth:`create` made it (a temporary one)."""
        if self._owns_state_dir and self.pid is None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------

    def _pick_another_port(self, attempt: int) -> bool:
        # A port picked by free_loopback_port() can be taken by someone else before
        # Synapse binds it; then (and only then) try again on a fresh port.
        if not self._auto_port or attempt + 1 >= _PORT_ATTEMPTS:
            return False
        if "Address already in use" not in self.log_tail():
            return False
        log.warning("local_synapse_port_taken", port=self.port)
        self.port = free_loopback_port()
        self._write_files()
        return True

    def _registration_body(
        self, nonce: str, username: str, password: str, admin: bool, displayname: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": _registration_mac(
                self.registration_shared_secret, nonce, username, password, admin=admin
            ),
        }
        if displayname is not None:
            body["displayname"] = displayname
        return body

    @staticmethod
    def _registered(reply: dict[str, Any], localpart: str, password: str) -> RegisteredUser:
        return RegisteredUser(
            user_id=reply["user_id"],
            access_token=reply["access_token"],
            device_id=reply["device_id"],
            password=password,
            localpart=localpart,
        )

    @staticmethod
    def _override_url(user_id: str) -> str:
        return f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit"
