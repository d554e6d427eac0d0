"""The bot's identity on Matrix: the login policy shared by ``run`` and ``doctor``
(and, with encryption, the device's keys)."""

from surfaces.session.availability import homeserver_unavailable
from surfaces.session.login import (
    DEVICE_DISPLAY_NAME,
    DEVICE_KEY,
    TOKEN_KEY,
    Credential,
    LoginRejected,
    credential_plan,
    identity_problem,
    login,
    password_login,
)

__all__ = [
    "DEVICE_DISPLAY_NAME",
    "DEVICE_KEY",
    "TOKEN_KEY",
    "Credential",
    "LoginRejected",
    "credential_plan",
    "homeserver_unavailable",
    "identity_problem",
    "login",
    "password_login",
]
