"""Our device identity: the Olm account, its signed device keys, one-time and fallback keys.

The server must hold enough one-time keys (OTKs) for everyone who wants to start an Olm
session with us; each claim uses one up. We keep the server's count at half of what the
account can hold (vodozemac keeps ``max_number_of_one_time_keys`` private keys), so a
burst of claims between two syncs does not exhaust it, and the account never discards an
unused private key whose public half is still on the server. The fallback key is what a
claim returns when the OTKs ran out; we replace it once the server says it was used.
"""

from __future__ import annotations

from typing import Any

import attrs
import vodozemac

from ._errors import PickleKeyError
from ._signing import sign_json
from ._store import AccountRecord
from ._types import MEGOLM_ALGORITHM, OLM_ALGORITHM, SIGNED_CURVE25519, IdentityKeys


@attrs.define
class OwnAccount:
    user_id: str
    device_id: str
    account: vodozemac.Account
    #: Whether the device keys were uploaded (then only OTKs and fallback keys are).
    shared: bool = False

    @property
    def identity_keys(self) -> IdentityKeys:
        return IdentityKeys(
            self.account.curve25519_key.to_base64(), self.account.ed25519_key.to_base64()
        )

    @property
    def max_one_time_keys(self) -> int:
        return self.account.max_number_of_one_time_keys

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(self.account, obj, self.user_id, self.device_id)

    def device_keys(self) -> dict[str, Any]:
        keys = self.identity_keys
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
                "keys": {
                    f"curve25519:{self.device_id}": keys.curve25519,
                    f"ed25519:{self.device_id}": keys.ed25519,
                },
            }
        )

    def keys_to_upload(self, server_count: int | None, fallback_used: bool) -> dict[str, Any]:
        """The ``/keys/upload`` body that brings the server to its target, or ``{}``.

        Generates what is missing. Keys stay unpublished (and are uploaded again, the same
        keys under the same ids, after a crash) until :meth:`mark_published`.
        """
        target = self.max_one_time_keys // 2
        unpublished = len(self.account.one_time_keys)
        if server_count is not None:
            missing = target - server_count - unpublished
            if missing > 0:
                self.account.generate_one_time_keys(missing)
        elif not self.shared and unpublished == 0:
            self.account.generate_one_time_keys(target)
        if (fallback_used or not self.shared) and not self.account.fallback_key:
            self.account.generate_fallback_key()
        body: dict[str, Any] = {}
        if not self.shared:
            body["device_keys"] = self.device_keys()
        otks = {
            f"{SIGNED_CURVE25519}:{key_id}": self.sign({"key": key.to_base64()})
            for key_id, key in self.account.one_time_keys.items()
        }
        if otks:
            body["one_time_keys"] = otks
        fallback = {
            f"{SIGNED_CURVE25519}:{key_id}": self.sign({"key": key.to_base64(), "fallback": True})
            for key_id, key in self.account.fallback_key.items()
        }
        if fallback:
            body["fallback_keys"] = fallback
        return body

    def mark_published(self) -> None:
        self.account.mark_keys_as_published()
        self.shared = True

    def to_record(self, pickle_key: bytes) -> AccountRecord:
        return AccountRecord(
            self.user_id, self.device_id, self.account.pickle(pickle_key), {"shared": self.shared}
        )

    @classmethod
    def from_record(cls, record: AccountRecord, pickle_key: bytes) -> OwnAccount:
        try:
            account = vodozemac.Account.from_pickle(record.pickle, pickle_key)
        except vodozemac.PickleException:
            raise PickleKeyError("the account pickle does not open with this pickle key") from None
        return cls(record.user_id, record.device_id, account, bool(record.data.get("shared")))
