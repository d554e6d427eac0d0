"""Sync methods: filters, one ``/sync`` request, and the :class:`Syncer` factory.

The loop itself (catch-up, long-poll, backoff, dedup) is :mod:`._sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import httpx
import trio

from ._converter import structure
from ._errors import TransportError
from ._http import CLIENT_V3, SYNC_LABEL, HttpCore, field, json_body, seg
from ._models import JsonDict, SyncResponse
from ._retry import call_with_retry
from ._sync import Syncer, SyncTimeoutError


class SyncMethods(HttpCore):
    __slots__ = ()

    async def upload_filter(self, filter: JsonDict) -> str:
        user = self._own_user_id()
        body = await self._call_object(
            "POST",
            f"{CLIENT_V3}/user/{seg(user)}/filter",
            "POST /user/{userId}/filter",
            json_body=filter,
        )
        return field(body, "filter_id", "POST /user/{userId}/filter")

    async def _sync_once(
        self,
        *,
        since: str | None,
        timeout_ms: int,
        filter_id: str | None,
        full_state: bool,
        margin_s: float | None = None,
    ) -> SyncResponse:
        """One ``/sync`` attempt, bounded by ``timeout_ms`` + ``margin_s``.

        ``margin_s`` defaults to ``sync_http_margin_s``; the :class:`Syncer` passes
        a larger one after consecutive timeouts. The httpx read timeout alone is
        not enough: it restarts on every chunk read, so a server trickling bytes
        could hold us forever. The trio deadline bounds the whole request; expiry
        (or the httpx read timeout) is a :class:`SyncTimeoutError`. The body is
        read under ``max_sync_bytes`` (over it: a transient
        :class:`~matrix_client.ResponseTooLargeError`).
        """
        params: dict[str, str] = {"timeout": str(max(0, timeout_ms))}
        if since is not None:
            params["since"] = since
        if filter_id is not None:
            params["filter"] = filter_id
        if full_state:
            params["full_state"] = "true"
        if self.sync_presence is not None:
            params["set_presence"] = self.sync_presence
        if margin_s is None:
            margin_s = self.sync_http_margin_s
        limit_s = max(0, timeout_ms) / 1000.0 + margin_s
        http_timeout = httpx.Timeout(connect=10.0, read=limit_s, write=30.0, pool=10.0)
        label = SYNC_LABEL
        try:
            with trio.fail_after(limit_s):
                reply = await self._attempt(
                    "GET",
                    f"{CLIENT_V3}/sync",
                    label,
                    params=params,
                    http_timeout=http_timeout,
                    max_bytes=self.max_sync_bytes,
                )
        except trio.TooSlowError as exc:
            raise SyncTimeoutError(f"{label}: no complete response in {limit_s:g} s") from exc
        except TransportError as exc:
            if isinstance(exc.__cause__, httpx.ReadTimeout):
                raise SyncTimeoutError(str(exc)) from exc.__cause__
            raise
        return structure(json_body(reply, label), SyncResponse, what="sync")

    async def sync(
        self,
        *,
        since: str | None,
        timeout_ms: int,
        filter_id: str | None = None,
        full_state: bool = False,
    ) -> SyncResponse:
        """One ``/sync`` with the usual retries. For a loop, use :meth:`syncer`."""
        return await call_with_retry(
            partial(
                self._sync_once,
                since=since,
                timeout_ms=timeout_ms,
                filter_id=filter_id,
                full_state=full_state,
            ),
            policy=self.retry,
            idempotent=True,
            label=SYNC_LABEL,
            rng=self._rng,
        )

    def syncer(
        self,
        *,
        since: str | None,
        filter_id: str | None,
        long_poll_ms: int = 30_000,
        min_interval_s: float = 0.5,
        dedup_size: int = 10_000,
        max_failures: int | None = None,
        max_margin_factor: float = 8.0,
        on_failure: Callable[[str], None] | None = None,
    ) -> Syncer:
        """A :class:`Syncer` starting at ``since`` (the caller's persisted token)."""
        return Syncer(
            self,  # type: ignore[arg-type]  # always a MatrixClient (the groups are mixins)
            since=since,
            filter_id=filter_id,
            long_poll_ms=long_poll_ms,
            min_interval_s=min_interval_s,
            dedup_size=dedup_size,
            max_failures=max_failures,
            max_margin_factor=max_margin_factor,
            on_failure=on_failure,
        )
