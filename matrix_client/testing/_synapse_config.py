"""The files a throwaway Synapse starts from: ``homeserver.yaml``, its log config, a key.

The whole ``homeserver.yaml`` is written here (``--generate-config`` would cost a
second process start), together with the signing key, so a cold start is one Python
process. The server is offline by construction: it listens on ``127.0.0.1`` only,
serves the client API (which includes media and ``/_synapse/admin``) and no
federation, trusts no key servers, reports no stats and keeps everything (SQLite
database, media, logs) in one state directory.

Kept apart from the process lifecycle (``_synapse.py``) because it is pure: a
configuration is a function of a few values, testable without starting anything.
"""

from __future__ import annotations

import base64
import enum
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

SERVER_NAME = "localhost"


class RatelimitProfile(enum.StrEnum):
    """Which rate limits the homeserver applies.

    Tests need both: ``LIFTED`` raises every ``rc_*`` limit Synapse knows so tests and
    benchmarks never see a 429; ``DEFAULT`` keeps Synapse's own defaults
    (``rc_message`` 0.2/s, burst 10) so the client's 429 handling meets real 429s.
    A ``StrEnum``, so callers may pass ``"lifted"`` or ``"default"``.
    """

    LIFTED = "lifted"
    DEFAULT = "default"


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


@attrs.frozen
class SynapseFiles:
    """Where one homeserver keeps its things, and what its configuration says.

    Attributes:
        state_dir: database, media store, logs, config and keys live here.
        port: the loopback port of the single HTTP listener.
        extra_config: merged into the generated ``homeserver.yaml`` last (mappings
            are merged key by key, anything else replaces), e.g.
            ``{"encryption_enabled_by_default_for_room_type": "all"}``.
    """

    state_dir: Path
    port: int
    ratelimits: RatelimitProfile
    registration_shared_secret: str = attrs.field(repr=False)
    max_upload_size: str
    extra_config: Mapping[str, Any]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "homeserver.log"

    @property
    def console_path(self) -> Path:
        return self.state_dir / "console.log"

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
        if self.ratelimits is RatelimitProfile.LIFTED:
            config.update(_LIFTED_RATELIMITS)
        return merge_config(config, self.extra_config)

    def write(self) -> None:
        """Write the config, the log config and (once) the signing key."""
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


def merge_config(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it: nested mappings merge, other values replace.

    So ``{"presence": {"enabled": True}}`` changes one key of the generated
    ``presence`` section instead of dropping the rest of it.
    """
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = value
    return merged


def registration_secret(state_dir: Path) -> str:
    """The shared registration secret of ``state_dir``, made (0600) on first use.

    Kept in the state directory so a reused directory registers users again.
    """
    secret_file = state_dir / "registration_shared_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def _signing_key_line() -> str:
    # Synapse's signing key file format (signedjson.key.write_signing_keys):
    # "<algorithm> <version> <unpadded base64 of the 32-byte ed25519 seed>".
    # Writing it here saves starting Synapse once with --generate-keys.
    seed = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"
