"""What ``/healthz`` and ``/readyz`` answer, decided from facts the bot reports.

Liveness (``/healthz``) asks "should an orchestrator restart this process?": the
sync loop is running and has succeeded recently, and the database still takes
writes. Readiness (``/readyz``) asks "has startup finished and are we not stopping?".

The bot reports facts; nothing here polls the bot::

    health = HealthState(stale_after_s=3 * long_poll_s + 30, db_probe=store.probe_writable)
    with health.sync_loop_running():
        while True:
            batch = await syncer.next()
            ...  # admit the batch
            health.sync_succeeded()
            if first:
                health.mark_ready()

Each check is reported by name in a JSON body, so an operator reading the
response (or the container's health log) sees which one failed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import attrs
import structlog
import trio

__all__ = ["CheckResult", "DbProbe", "HealthReport", "HealthState"]

log = structlog.get_logger(__name__)

#: Supplied by the bot: completes if the database takes a write. It may return
#: ``False`` or raise to report failure. It is cancelled after
#: ``HealthState.db_probe_timeout_s``, so it must be cancellable: if it runs in a
#: thread, use ``trio.to_thread.run_sync(..., abandon_on_cancel=True)``.
DbProbe = Callable[[], Awaitable[bool | None]]


@attrs.frozen
class CheckResult:
    """One named check: whether it passed and a human-readable detail."""

    ok: bool
    detail: str


@attrs.frozen
class HealthReport:
    """The outcome of ``/healthz`` or ``/readyz``: overall status plus each check."""

    checks: dict[str, CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    @property
    def failed(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]

    def to_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "fail",
            "failed": self.failed,
            "checks": {
                name: {"ok": check.ok, "detail": check.detail}
                for name, check in self.checks.items()
            },
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode() + b"\n"


@attrs.define(eq=False)
class HealthState:
    """Facts health depends on, reported by the bot as they happen.

    Args:
        stale_after_s: the longest gap between successful syncs (or since the sync
            loop started, before the first success) that still counts as alive. A
            long-poll sync returns at least every ``long_poll_s``, so use about
            ``3 * long_poll_s`` plus the HTTP margin.
        db_probe: see :data:`DbProbe`; ``None`` skips the database check.
        db_probe_timeout_s: how long the probe may take before it counts as failed.
        clock: where ``now`` comes from; :func:`trio.current_time` by default, a
            fake callable in tests.
    """

    stale_after_s: float = 120.0
    db_probe: DbProbe | None = None
    db_probe_timeout_s: float = 5.0
    clock: Callable[[], float] = trio.current_time

    _sync_loop_started_at: float | None = attrs.field(init=False, default=None)
    _last_sync: float | None = attrs.field(init=False, default=None)
    _ready: bool = attrs.field(init=False, default=False)
    _shutting_down: bool = attrs.field(init=False, default=False)

    # -- facts reported by the bot ------------------------------------------------

    def sync_loop_started(self) -> None:
        """The sync loop is running; staleness counts from now until a success."""
        self._sync_loop_started_at = self.clock()

    def sync_loop_stopped(self) -> None:
        """The sync loop has exited; ``/healthz`` fails from now on."""
        self._sync_loop_started_at = None

    @contextmanager
    def sync_loop_running(self) -> Iterator[None]:
        """``with health.sync_loop_running():`` around the sync loop's body."""
        self.sync_loop_started()
        try:
            yield
        finally:
            self.sync_loop_stopped()

    def sync_succeeded(self, now: float | None = None) -> None:
        """A sync response was admitted (``now`` defaults to ``clock()``)."""
        self._last_sync = self.clock() if now is None else now

    def mark_ready(self) -> None:
        """Startup finished: logged in, first sync done."""
        self._ready = True

    def mark_shutting_down(self) -> None:
        """Shutdown began: ``/readyz`` fails so no new traffic is routed here."""
        self._shutting_down = True

    @property
    def ready(self) -> bool:
        return self._ready and not self._shutting_down

    # -- checks -------------------------------------------------------------------

    async def check_health(self) -> HealthReport:
        """Liveness: checks ``sync`` and ``database``."""
        return HealthReport({"sync": self._check_sync(), "database": await self._check_db()})

    def check_ready(self) -> HealthReport:
        """Readiness: checks ``startup`` and ``shutdown``."""
        return HealthReport(
            {
                "startup": CheckResult(
                    self._ready, "startup finished" if self._ready else "starting up"
                ),
                "shutdown": CheckResult(
                    not self._shutting_down,
                    "shutting down" if self._shutting_down else "running",
                ),
            }
        )

    def _check_sync(self) -> CheckResult:
        if self._sync_loop_started_at is None:
            return CheckResult(False, "sync loop not running")
        now = self.clock()
        if self._last_sync is None:
            age = now - self._sync_loop_started_at
            what = "no successful sync yet; loop started"
        else:
            age = now - self._last_sync
            what = "last successful sync"
        ok = age <= self.stale_after_s
        limit = "" if ok else f" (limit {self.stale_after_s:g} s)"
        return CheckResult(ok, f"{what} {max(0.0, age):.1f} s ago{limit}")

    async def _check_db(self) -> CheckResult:
        if self.db_probe is None:
            return CheckResult(True, "no probe configured")
        result: bool | None = False
        with trio.move_on_after(self.db_probe_timeout_s) as scope:
            try:
                result = await self.db_probe()
            except Exception as exc:
                log.warning("ops_db_probe_failed", error=repr(exc))
                return CheckResult(False, f"probe failed: {type(exc).__name__}: {exc}")
        if scope.cancelled_caught:
            log.warning("ops_db_probe_timed_out", timeout_s=self.db_probe_timeout_s)
            return CheckResult(False, f"probe timed out after {self.db_probe_timeout_s:g} s")
        if result is False:
            return CheckResult(False, "probe reported the database is not writable")
        return CheckResult(True, "writable")
