"""A throwaway Synapse homeserver on loopback, for the e2e tests, benchmarks and the demo.

Nothing is installed at run time: the homeserver is the installed ``matrix-synapse``
package (the ``test`` and ``demo`` extras), started as ``sys.executable -m
synapse.app.homeserver`` from the files ``_synapse_config.py`` writes, and answering
``/_matrix/client/versions`` a couple of seconds later. Users come from the
shared-secret registration admin API, so public registration stays off.

**One lifecycle.** The process is a plain ``subprocess.Popen`` driven by blocking
code (start, wait until ready, stop, the admin calls); that code is the only
implementation. The async API runs the same functions in a worker thread:

* a child process owned by no event loop outlives any one ``trio.run``, so a
  session-scoped pytest fixture (sync, outside every test's trio run) and a trio
  program use the same object the same way;
* a cancelled async start sets an interrupt that the readiness poll checks every
  50 ms; the worker thread then stops the process itself, and :meth:`stop` (which
  waits for the lifecycle lock) cannot race it;
* stopping is bounded (SIGTERM, 10 s, SIGKILL, 5 s) and never abandoned: an async
  :meth:`stop` under cancellation still waits until the process is reaped.

Async use (trio)::

    async with LocalSynapse.running() as hs:
        alice = await hs.register("alice", "secret-password")
        ...  # talk to hs.base_url with alice.access_token

Blocking use (e.g. a session-scoped pytest fixture, which cannot live in a trio run)::

    with LocalSynapse.running_blocking(ratelimits="default") as hs:
        bob = hs.register_blocking("bob", "secret-password")

Extra homeserver configuration is merged into the generated one::

    LocalSynapse.running(extra_config={"encryption_enabled_by_default_for_room_type": "all"})
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import attrs
import httpx
import structlog
import trio

from ._synapse_config import SERVER_NAME, RatelimitProfile, SynapseFiles, registration_secret

__all__ = [
    "LocalSynapse",
    "RatelimitProfile",
    "RegisteredUser",
    "SynapseError",
    "SynapseOptions",
    "SynapseStartError",
    "free_loopback_port",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_STOP_GRACE_S = 10.0
_KILL_WAIT_S = 5.0
_POLL_INTERVAL_S = 0.05
# One readiness probe; a loopback connect to a closed port fails at once.
_PROBE_TIMEOUT_S = 2.0
# One admin API call (registration hashes a password: bcrypt_rounds is 4).
_ADMIN_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class SynapseError(RuntimeError):
    """A request to the local homeserver's admin API failed."""


class SynapseStartError(RuntimeError):
    """Synapse exited early or did not answer ``/versions`` before the deadline.

    The message carries the tail of Synapse's log files, which is where the reason is.
    """


class SynapseOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`LocalSynapse.create`, for the context managers."""

    ratelimits: RatelimitProfile | str
    port: int | None
    startup_deadline_s: float
    extra_config: Mapping[str, Any] | None
    max_upload_size: str


class _Interrupted(Exception):
    """The async caller of a start was cancelled (raised in the worker thread)."""


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
    take the port; Synapse then exits early, and a start on a picked port retries on
    a fresh one.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define(eq=False)
class LocalSynapse:
    """One Synapse process on ``127.0.0.1:<port>`` with its state in ``state_dir``.

    Build it with :meth:`create` (writes the configuration, starts nothing), then
    start it, or use :meth:`running` (trio) / :meth:`running_blocking`, which also stop
    it and remove a temporary state directory. A given ``state_dir`` is kept,
    including the signing key and the registration secret, so a demo can restart on
    the same database.

    Attributes:
        startup_deadline_s: how long a start may take before it counts as failed.
        startup_s: seconds from process start to ``/versions`` answering, once started.
    """

    _files: SynapseFiles
    startup_deadline_s: float = 60.0
    startup_s: float | None = None
    _owns_state_dir: bool = False
    _auto_port: bool = False
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, repr=False)
    # Serialises start and stop: an interrupted start cleans up before a stop runs.
    _lifecycle: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        ratelimits: RatelimitProfile | str = RatelimitProfile.LIFTED,
        port: int | None = None,
        startup_deadline_s: float = 60.0,
        extra_config: Mapping[str, Any] | None = None,
        max_upload_size: str = "50M",
    ) -> LocalSynapse:
        """Prepare a state directory and write ``homeserver.yaml``; start nothing.

        Args:
            state_dir: where to keep everything; ``None`` makes a temporary directory
                that :meth:`cleanup` (and the context managers) delete.
            ratelimits: ``"lifted"`` (no 429s in practice) or ``"default"``.
            port: loopback port to listen on; ``None`` picks a free one (and a start
                retries on another one if it was taken meanwhile).
            startup_deadline_s: limit for one start, read by the start methods.
            extra_config: merged into the generated configuration (see
                :class:`SynapseFiles`), e.g. ``{"presence": {"enabled": True}}``.
        Raises:
            ValueError: an unknown rate-limit profile.
        """
        profile = RatelimitProfile(ratelimits)
        owns = state_dir is None
        path = Path(tempfile.mkdtemp(prefix="surfaces-synapse-") if owns else state_dir)
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        files = SynapseFiles(
            state_dir=path,
            port=port if port is not None else free_loopback_port(),
            ratelimits=profile,
            registration_shared_secret=registration_secret(path),
            max_upload_size=max_upload_size,
            extra_config=copy.deepcopy(dict(extra_config or {})),
        )
        files.write()
        return cls(
            files,
            startup_deadline_s=startup_deadline_s,
            owns_state_dir=owns,
            auto_port=port is None,
        )

    @property
    def state_dir(self) -> Path:
        """Database, media store, logs, config and keys live here."""
        return self._files.state_dir

    @property
    def port(self) -> int:
        """The loopback port of the single HTTP listener."""
        return self._files.port

    @property
    def ratelimits(self) -> RatelimitProfile:
        return self._files.ratelimits

    @property
    def registration_shared_secret(self) -> str:
        return self._files.registration_shared_secret

    @property
    def server_name(self) -> str:
        """The homeserver's name: user ids look like ``@alice:localhost``."""
        return SERVER_NAME

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the client-server API base URL."""
        return self._files.base_url

    @property
    def config_path(self) -> Path:
        return self._files.config_path

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above)."""
        return self._files.log_path

    @property
    def console_path(self) -> Path:
        """Synapse's stdout/stderr (start-up errors land here before logging is set up)."""
        return self._files.console_path

    @property
    def pid(self) -> int | None:
        """Process id of the running Synapse, or ``None`` when it is not running."""
        process = self._process
        return process.pid if process is not None else None

    def is_running(self) -> bool:
        """True while the Synapse process started by this object is alive."""
        process = self._process
        return process is not None and process.poll() is None

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{SERVER_NAME}"

    def homeserver_config(self) -> dict[str, Any]:
        """The configuration written to ``homeserver.yaml`` (a plain dict)."""
        return self._files.homeserver_config()

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

    # -- the async API: the blocking lifecycle in a worker thread ---------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, state_dir: str | os.PathLike[str] | None = None, **options: Unpack[SynapseOptions]
    ) -> AsyncIterator[LocalSynapse]:
        """Start Synapse, yield it once ``/versions`` answers, stop it on exit.

        ``options`` are those of :meth:`create`. Stopping happens even when the body
        raises or is cancelled: SIGTERM, a bounded wait, then SIGKILL. A temporary
        state directory is removed.

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        create = functools.partial(cls.create, state_dir, **options)
        hs = await trio.to_thread.run_sync(create)
        try:
            await hs.start()
            yield hs
        finally:
            with trio.CancelScope(shield=True):
                await hs.stop()
                await trio.to_thread.run_sync(hs.cleanup)

    async def start(self) -> None:
        """Start the process and wait until ``/versions`` answers.

        A cancellation stops the half-started process (in the worker thread, within
        one readiness probe) before :meth:`stop` can run.

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        interrupt = threading.Event()
        try:
            await trio.to_thread.run_sync(self._start, interrupt, abandon_on_cancel=True)
        except trio.Cancelled:
            interrupt.set()
            raise

    async def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Safe to call when not running.

        Not abandoned on cancellation: the process is reaped before this returns.
        """
        await trio.to_thread.run_sync(self.stop_blocking)

    async def register(
        self, username: str, password: str, *, admin: bool = False, displayname: str | None = None
    ) -> RegisteredUser:
        """Create a user with the shared-secret admin API and return its login.

        Args:
            username: the localpart (``alice`` for ``@alice:localhost``).
        Raises:
            SynapseError: Synapse refused (e.g. the user exists already).
        """
        call = functools.partial(
            self.register_blocking, username, password, admin=admin, displayname=displayname
        )
        return await _admin_call(call)

    async def lift_ratelimit(self, admin_token: str, user_id: str) -> None:
        """Exempt one user from message rate limits (admin API override)."""
        await _admin_call(functools.partial(self.lift_ratelimit_blocking, admin_token, user_id))

    # -- the blocking API: the one implementation -------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running_blocking(
        cls, state_dir: str | os.PathLike[str] | None = None, **options: Unpack[SynapseOptions]
    ) -> Iterator[LocalSynapse]:
        """Like :meth:`running`, without trio: for session fixtures and scripts."""
        hs = cls.create(state_dir, **options)
        try:
            hs.start_blocking()
            yield hs
        finally:
            hs.stop_blocking()
            hs.cleanup()

    def start_blocking(self) -> None:
        """Start the process and block until ``/versions`` answers.

        Raises:
            SynapseStartError: the process exited early or missed the deadline.
        """
        self._start(threading.Event())

    def stop_blocking(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Safe to call when not running."""
        with self._lifecycle:
            self._stop_locked()

    def register_blocking(
        self, username: str, password: str, *, admin: bool = False, displayname: str | None = None
    ) -> RegisteredUser:
        """Blocking :meth:`register`."""
        url = "/_synapse/admin/v1/register"
        with self._admin_http() as http:
            nonce = _check(http.get(url), "register nonce")["nonce"]
            body = self._registration_body(nonce, username, password, admin, displayname)
            reply = _check(http.post(url, json=body), f"register {username}")
        try:
            return RegisteredUser(
                user_id=reply["user_id"],
                access_token=reply["access_token"],
                device_id=reply["device_id"],
                password=password,
                localpart=username,
            )
        except KeyError as missing:
            raise SynapseError(f"register {username}: no {missing} in the reply") from None

    def lift_ratelimit_blocking(self, admin_token: str, user_id: str) -> None:
        """Blocking :meth:`lift_ratelimit`."""
        url = f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit"
        with self._admin_http() as http:
            response = http.post(
                url,
                json={"messages_per_second": 0, "burst_count": 0},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
        _check(response, f"override_ratelimit {user_id}")

    def cleanup(self) -> None:
        """Delete the state directory if :meth:`create` made it (a temporary one)."""
        if self._owns_state_dir and self.pid is None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- lifecycle internals (worker thread or caller's thread) -----------------------

    def _start(self, interrupt: threading.Event) -> None:
        with self._lifecycle:
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    return self._start_once(interrupt)
                except SynapseStartError:
                    if not self._pick_another_port(attempt):
                        raise

    def _start_once(self, interrupt: threading.Event) -> None:
        if self._process is not None:
            raise RuntimeError("Synapse is already running")
        began = time.monotonic()
        with self.console_path.open("wb") as console:
            self._process = subprocess.Popen(
                _command(self.config_path),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=str(self.state_dir),
            )
        try:
            self._wait_ready(self._process, interrupt, deadline=began + self.startup_deadline_s)
        except BaseException:
            self._stop_locked()
            raise
        self.startup_s = time.monotonic() - began
        log.info("local_synapse_started", base_url=self.base_url, startup_s=self.startup_s)

    def _wait_ready(
        self, process: subprocess.Popen[bytes], interrupt: threading.Event, *, deadline: float
    ) -> None:
        with httpx.Client(timeout=_PROBE_TIMEOUT_S) as http:
            while process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    if http.get(self.base_url + "/_matrix/client/versions").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise self._start_failed(
                        f"did not answer /versions within {self.startup_deadline_s:g} s"
                    )
                if interrupt.wait(_POLL_INTERVAL_S):
                    raise _Interrupted
        raise self._start_failed(f"exited with code {process.returncode}")

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("local_synapse_kill", pid=process.pid)
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(_KILL_WAIT_S)
        log.info("local_synapse_stopped", base_url=self.base_url, returncode=process.returncode)

    def _start_failed(self, reason: str) -> SynapseStartError:
        return SynapseStartError(f"Synapse on {self.base_url} {reason}\n{self.log_tail()}")

    def _pick_another_port(self, attempt: int) -> bool:
        # A port picked by free_loopback_port() can be taken by someone else before
        # Synapse binds it; then (and only then) try again on a fresh port.
        if not self._auto_port or attempt + 1 >= _PORT_ATTEMPTS:
            return False
        if "Address already in use" not in self.log_tail():
            return False
        log.warning("local_synapse_port_taken", port=self.port)
        self._files = attrs.evolve(self._files, port=free_loopback_port())
        self._files.write()
        return True

    # -- admin API internals ----------------------------------------------------------

    def _admin_http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=_ADMIN_TIMEOUT_S)

    def _registration_body(
        self, nonce: str, username: str, password: str, admin: bool, displayname: str | None
    ) -> dict[str, Any]:
        mac = hmac.new(self.registration_shared_secret.encode("utf-8"), digestmod=hashlib.sha1)
        for part in (nonce, username, password):
            mac.update(part.encode("utf-8"))
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        return body


def _command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(config_path)]


async def _admin_call(call: Callable[[], T]) -> T:
    # One HTTP exchange bounded by its own timeout and holding nothing that needs
    # cleaning up: on cancellation the thread may be left to finish on its own.
    return await trio.to_thread.run_sync(call, abandon_on_cancel=True)


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SynapseError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SynapseError(f"{what}: unexpected body {response.text[:200]!r}")
    return body
