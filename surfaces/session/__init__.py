"""The bot's identity on Matrix: the login policy shared by ``run`` and ``doctor``,
and with encryption the device's keys at work (``Crypto``)."""

from surfaces.session.availability import homeserver_unavailable
from surfaces.session.crypto import Crypto, Decrypted, Decryption
from surfaces.session.identity import identity_device_id, open_crypto
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
    "Crypto",
    "Decrypted",
    "Decryption",
    "LoginRejected",
    "credential_plan",
    "homeserver_unavailable",
    "identity_device_id",
    "identity_problem",
    "login",
    "open_crypto",
    "password_login",
]
