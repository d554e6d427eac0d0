"""``AgentClient``: the entry point — a turn (``turn``) or a health check (``probe``)
against an agent's base URL; the turn itself is ``_turn.Turn``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import attrs
import trio

from ._connect import Connector, connect_tcp
from ._errors import (
    AGENT_UNAVAILABLE,
    AgentFailure,
)
from ._limits import TurnLimits
from ._turn import Turn
from ._urls import WsTarget, endpoint_url


@attrs.frozen
class ProbeResult:
    """Timings of ``AgentClient.probe`` (seconds from the start of the probe)."""

    url: str
    connect_s: float
    status_s: float
    #: The agent process's identity from its STATUS (``boot_id``), if it sends one.
    boot_id: str | None = None


class _TurnContext:
    """``async with client.turn(...)``: opens the turn on entry, closes it on exit."""

    __slots__ = ("_make", "_turn")

    def __init__(self, make: Callable[[], Turn]) -> None:
        self._make = make  # the turn's clock starts when the block is entered
        self._turn: Turn | None = None

    async def __aenter__(self) -> Turn:
        self._turn = turn = self._make()
        try:
            await turn._start()
        except BaseException:
            await turn._aclose()
            raise
        return turn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._turn is not None
        await self._turn._aclose()


class _FailedContext:
    """``client.turn`` with an invalid url: entering raises the failure."""

    __slots__ = ("_failure",)

    def __init__(self, failure: AgentFailure) -> None:
        self._failure = failure

    async def __aenter__(self) -> Turn:
        await trio.lowlevel.checkpoint()
        raise self._failure

    async def __aexit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None


@attrs.define
class AgentClient:
    """Runs turns against agents; stateless apart from its limits.

    Args:
        limits: deadlines, retries and frame size (``TurnLimits``).
        connector: ``async (WsTarget) -> trio.abc.Stream``; the test seam. Default:
            TCP, or TLS for ``wss://``.
    """

    limits: TurnLimits = attrs.field(factory=TurnLimits)
    connector: Connector | None = attrs.field(default=None, kw_only=True)

    def turn(
        self,
        base_url: str,
        chat_id: str,
        text: str,
        attachments: Sequence[str] = (),
    ) -> AbstractAsyncContextManager[Turn]:
        """``async with client.turn(...) as turn: async for event in turn: ...``.

        Entering connects (with retries), waits for STATUS and sends USER_MESSAGE;
        leaving closes the socket, also when the block is cancelled (the turn starts
        no task). Raises ``AgentFailure`` (an invalid base url is
        ``AGENT_UNAVAILABLE``, not retryable).
        """
        try:
            target = _target(base_url, chat_id)
        except AgentFailure as failure:
            return _FailedContext(failure)
        return _TurnContext(
            functools.partial(
                Turn,
                target=target,
                chat_id=chat_id,
                text=text,
                attachments=tuple(attachments),
                limits=self.limits,
                connector=self.connector or connect_tcp,
            )
        )

    async def probe(self, base_url: str, chat_id: str) -> ProbeResult:
        """Connect, wait for STATUS, close: a health check that sends no message.

        One attempt, no retries; ``connect_s``/``status_s``/``total_s`` apply.
        Raises ``AgentFailure``.
        """
        target = _target(base_url, chat_id)
        limits = attrs.evolve(self.limits, retries=0)
        turn = Turn(
            target=target,
            chat_id=chat_id,
            text=None,
            attachments=(),
            limits=limits,
            connector=self.connector or connect_tcp,
        )
        try:
            try:
                await turn._open_attempt(send_message=False)
            except AgentFailure as failure:
                failure.attempts = 1
                raise
            attempt = turn._attempt
            assert attempt is not None
            assert attempt.connected_at is not None
            assert attempt.status_at is not None
            return ProbeResult(
                url=target.url,
                connect_s=attempt.connected_at - attempt.started_at,
                status_s=attempt.status_at - attempt.started_at,
                boot_id=turn.boot_id,
            )
        finally:
            await turn._aclose()


def _target(base_url: str, chat_id: str) -> WsTarget:
    try:
        return _cached_target(base_url, chat_id)
    except ValueError as exc:
        raise AgentFailure(AGENT_UNAVAILABLE, f"invalid agent url: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _cached_target(base_url: str, chat_id: str) -> WsTarget:
    # A chat talks to the same agent turn after turn: parse its url once. Bounded;
    # WsTarget is immutable, and invalid urls raise (exceptions are not cached).
    return WsTarget.from_url(endpoint_url(base_url, chat_id))
