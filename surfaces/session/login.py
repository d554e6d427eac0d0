"""Who the bot is on Matrix: the login policy, shared by ``surfaces run`` and ``doctor``.

The bot keeps **one device** for its whole life, because transaction ids are scoped per
device (a retried send after a restart must reuse the same device to be deduplicated).
So the credentials are tried in a fixed order (:func:`credential_plan`): the configured
access token; else the token the bot saved in its state database; else a password login
with the fixed ``MATRIX_DEVICE_ID`` (which reuses the same device), whose token is saved
for the next start. With encryption the device is the one the bot's keys belong to,
which is ``MATRIX_DEVICE_ID`` unless a lost database moved the bot to a new device
(``surfaces.session.identity``). ``doctor`` walks the same plan to explain it without side effects.
"""

from __future__ import annotations

import enum

import structlog

from matrix_client import LoginResponse, MatrixClient, MatrixError, UnknownTokenError, WhoAmI
from surfaces.config import MatrixConfig
from surfaces.core import FatalError
from surfaces.state import Store

log = structlog.get_logger(__name__)

#: Where the bot keeps its access token and the device id it last ran as (``kv`` table).
TOKEN_KEY = "matrix.access_token"
DEVICE_KEY = "matrix.device_id"
DEVICE_DISPLAY_NAME = "Surfaces bot"
#: Login answers that mean "these credentials are wrong" (not an outage).
_REJECTED = frozenset({400, 401, 403})


class LoginRejected(FatalError):
    """The homeserver refused the password login (wrong user id or password)."""

    def __init__(self, user_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"login as {user_id} failed: {reason} (check MATRIX_USER_ID / MATRIX_PASSWORD)"
        )


class Credential(enum.Enum):
    CONFIGURED_TOKEN = "MATRIX_ACCESS_TOKEN"
    STORED_TOKEN = "the token the bot saved in the state DB"
    PASSWORD = "MATRIX_PASSWORD"


def credential_plan(matrix: MatrixConfig, stored_token: str | None) -> list[Credential]:
    """The credentials to try, in order (see the module docstring)."""
    if matrix.access_token is not None:
        return [Credential.CONFIGURED_TOKEN]
    plan = [Credential.STORED_TOKEN] if stored_token else []
    if matrix.password is not None:
        plan.append(Credential.PASSWORD)
    return plan


async def password_login(
    client: MatrixClient, matrix: MatrixConfig, *, device_id: str | None = None
) -> LoginResponse:
    """Log in on the bot's fixed device (``device_id``: the device of the bot's crypto
    identity, when it has one; else the configured one). Rejected credentials raise
    :class:`LoginRejected`."""
    assert matrix.password is not None
    try:
        return await client.login_password(
            matrix.user_id,
            matrix.password.reveal(),
            device_id=device_id or matrix.device_id,
            device_display_name=DEVICE_DISPLAY_NAME,
        )
    except MatrixError as exc:
        # Only the homeserver's own answer rejects credentials: a proxy's 403 page
        # (no errcode) is an outage to wait for, not a wrong password.
        if exc.status in _REJECTED and exc.errcode is not None:
            raise LoginRejected(matrix.user_id, exc.errcode) from exc
        raise


def identity_problem(who: WhoAmI, matrix: MatrixConfig) -> str | None:
    """Why these credentials are not the bot's, or None."""
    if who.user_id != matrix.user_id:
        return f"the credentials belong to {who.user_id}, not MATRIX_USER_ID={matrix.user_id}"
    return None


async def login(
    client: MatrixClient, store: Store, matrix: MatrixConfig, *, device_id: str | None = None
) -> WhoAmI:
    """Make ``client`` the bot's one device; returns whoami. ``device_id`` overrides the
    configured device for a password login (the device the bot's crypto identity
    belongs to). Raises :class:`FatalError` for credentials that cannot work (rejected,
    missing, someone else's)."""
    who: WhoAmI | None = None
    plan = credential_plan(matrix, await store.get_value(TOKEN_KEY))
    if not plan:
        raise FatalError("no MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN configured")
    for credential in plan:
        if credential is Credential.CONFIGURED_TOKEN:
            assert matrix.access_token is not None
            client.access_token = matrix.access_token.reveal()
            who = await _whoami(client, "MATRIX_ACCESS_TOKEN was rejected")
        elif credential is Credential.STORED_TOKEN:
            client.access_token = await store.get_value(TOKEN_KEY)
            try:
                who = await client.whoami()
            except UnknownTokenError:
                log.info("stored_token_expired")
                client.access_token = None
                continue
        else:
            answer = await password_login(client, matrix, device_id=device_id)
            await store.set_value(TOKEN_KEY, answer.access_token)
            who = await _whoami(client, "the new access token was rejected")
        break
    if who is None:
        raise FatalError("the saved access token expired and no MATRIX_PASSWORD is configured")
    problem = identity_problem(who, matrix)
    if problem is not None:
        raise FatalError(problem)
    previous = await store.get_value(DEVICE_KEY)
    if who.device_id and previous and previous != who.device_id:
        log.warning("device_id_changed", previous=previous, current=who.device_id)
    if who.device_id:
        await store.set_value(DEVICE_KEY, who.device_id)
    log.info("matrix_logged_in", user_id=who.user_id, device_id=who.device_id)
    return who


async def _whoami(client: MatrixClient, problem: str) -> WhoAmI:
    try:
        return await client.whoami()
    except UnknownTokenError as exc:
        raise FatalError(f"{problem} (M_UNKNOWN_TOKEN)") from exc
