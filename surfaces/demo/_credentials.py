"""The demo's accounts: generated passwords kept in the state directory.

Kept so a reused ``--state-dir`` logs the same users in again (Synapse's database
remembers them; only the passwords would be lost otherwise).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import attrs

from matrix_client.testing import LocalSynapse, SynapseError


@attrs.define
class Credentials:
    """Generated passwords in ``credentials.json`` (0600), one per localpart."""

    path: Path
    data: dict[str, str] = attrs.Factory(dict)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{path}: not a JSON object of localpart -> password")
        return cls(path, data)

    def password(self, localpart: str) -> str:
        """The password of ``localpart``, generated and saved the first time."""
        if localpart not in self.data:
            self.data[localpart] = secrets.token_urlsafe(12)
            self.path.write_text(json.dumps(self.data, indent=2))
            self.path.chmod(0o600)
        return self.data[localpart]


async def ensure_user(hs: LocalSynapse, creds: Credentials, localpart: str) -> bool:
    """Register ``localpart``; False when it existed already (a reused state dir)."""
    try:
        await hs.register(localpart, creds.password(localpart))
    except SynapseError as exc:
        if "M_USER_IN_USE" in str(exc) or "already taken" in str(exc):
            return False
        raise
    return True
