"""The one failure type of the agent client (agent-protocol.md, "Failure taxonomy")."""

from __future__ import annotations

import trio

AGENT_UNAVAILABLE = "AGENT_UNAVAILABLE"
AGENT_TIMEOUT = "AGENT_TIMEOUT"
AGENT_DISCONNECTED = "AGENT_DISCONNECTED"
AGENT_PROTOCOL_ERROR = "AGENT_PROTOCOL_ERROR"
AGENT_ERROR = "AGENT_ERROR"

FAILURE_CODES = frozenset(
    {AGENT_UNAVAILABLE, AGENT_TIMEOUT, AGENT_DISCONNECTED, AGENT_PROTOCOL_ERROR, AGENT_ERROR}
)
TIMEOUT_PHASES = ("connect", "status", "first_text", "idle", "total")


class AgentFailure(Exception):
    """A turn (or probe) failed; ``code`` is one of the protocol's failure codes.

    Attributes:
        code: ``AGENT_UNAVAILABLE`` | ``AGENT_TIMEOUT`` | ``AGENT_DISCONNECTED`` |
            ``AGENT_PROTOCOL_ERROR`` | ``AGENT_ERROR``.
        phase: for ``AGENT_TIMEOUT``: ``connect|status|first_text|idle|total``.
        agent_code: the agent's own ``ERROR.code`` (``AGENT_ERROR`` only).
        details: human-readable detail (the agent's ``ERROR.details`` for ``AGENT_ERROR``).
        retryable: the failure is transient *and* nothing of the reply had reached the
            caller, so running the turn again is safe. The client itself already
            retried such failures ``TurnLimits.retries`` times before raising.
        attempts: how many connections the turn used.
    """

    def __init__(
        self,
        code: str,
        details: str | None = None,
        *,
        phase: str | None = None,
        agent_code: str | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        if code not in FAILURE_CODES:
            raise ValueError(f"unknown agent failure code {code!r}")
        if phase is not None and phase not in TIMEOUT_PHASES:
            raise ValueError(f"unknown timeout phase {phase!r}")
        self.code = code
        self.phase = phase
        self.agent_code = agent_code
        self.details = details
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(code, details)

    def __str__(self) -> str:
        head = self.code
        if self.phase:
            head += f"({self.phase})"
        if self.agent_code:
            head += f"[{self.agent_code}]"
        return f"{head}: {self.details}" if self.details else head

    def __repr__(self) -> str:
        return (
            f"AgentFailure(code={self.code!r}, phase={self.phase!r}, "
            f"agent_code={self.agent_code!r}, details={self.details!r}, "
            f"retryable={self.retryable!r}, attempts={self.attempts!r})"
        )


def collapse_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single meaningful exception inside a nursery's exception group.

    A group of ``Cancelled`` only (a nursery cancelled from outside) collapses to one
    ``Cancelled``, which the cancel scope that owns it catches like the group it
    replaces; one real error among cancellations collapses to that error. More than
    one real error would be a bug: the group is returned as it is.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        exc = real[0]
    elif not real and leaves:
        exc = leaves[0]
    else:
        return group
    exc.__suppress_context__ = True
    return exc
