"""Device keys: validation of ``/keys/query`` answers and trust on first use.

A device's keys are input from the server (which could lie) and from the device's owner
(who could be impersonated). We accept a device only when its ``device_keys`` object names
the user and device it is listed under, carries both keys for that device id, and is
signed by its own ed25519 key. The first keys we accept for (user, device) are **pinned**:
a later answer with other keys for the same device is refused (the device is no longer
used for encryption) and reported, because that is what a compromised or malicious server
would do to read along.
"""

from __future__ import annotations

from typing import Any

import attrs
import vodozemac

from ._signing import verify_signed_json
from ._store import DeviceRecord
from ._types import MEGOLM_ALGORITHM, OLM_ALGORITHM

#: Bounds on what a device-keys object may carry (a real one is well under these).
MAX_ID_LENGTH = 255


@attrs.frozen
class Device:
    """One device of a user, as pinned.

    ``deleted``: the server no longer lists it (its sessions must rotate). ``keys_changed``:
    the server listed other keys for it than the pinned ones (it gets no more keys).
    """

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str
    algorithms: tuple[str, ...] = (OLM_ALGORITHM, MEGOLM_ALGORITHM)
    deleted: bool = False
    keys_changed: bool = False

    @property
    def usable(self) -> bool:
        """Whether we may encrypt to this device."""
        return (
            not self.deleted
            and not self.keys_changed
            and OLM_ALGORITHM in self.algorithms
            and MEGOLM_ALGORITHM in self.algorithms
        )

    def to_record(self) -> DeviceRecord:
        return DeviceRecord(
            self.user_id,
            self.device_id,
            {
                "curve25519": self.curve25519,
                "ed25519": self.ed25519,
                "algorithms": list(self.algorithms),
                "deleted": self.deleted,
                "keys_changed": self.keys_changed,
            },
        )

    @classmethod
    def from_record(cls, record: DeviceRecord) -> Device:
        d = record.data
        return cls(
            record.user_id,
            record.device_id,
            d["curve25519"],
            d["ed25519"],
            tuple(d["algorithms"]),
            bool(d["deleted"]),
            bool(d["keys_changed"]),
        )


def valid_key(text: object, key_type: type[Any]) -> str | None:
    """``text`` if it is a valid base64 key of ``key_type`` (a vodozemac key class)."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        key_type.from_base64(text)
    except ValueError:
        return None
    return text


def parse_device_keys(user_id: str, device_id: str, raw: object) -> Device | str:
    """The :class:`Device` in one ``/keys/query`` entry, or why it is refused."""
    if not isinstance(raw, dict):
        return "device keys are not an object"
    if raw.get("user_id") != user_id or raw.get("device_id") != device_id:
        return "user_id/device_id in the keys do not match where they are listed"
    if len(user_id) > MAX_ID_LENGTH or len(device_id) > MAX_ID_LENGTH:
        return "id too long"
    keys = raw.get("keys")
    if not isinstance(keys, dict):
        return "no keys"
    curve = valid_key(keys.get(f"curve25519:{device_id}"), vodozemac.Curve25519PublicKey)
    ed = valid_key(keys.get(f"ed25519:{device_id}"), vodozemac.Ed25519PublicKey)
    if curve is None or ed is None:
        return "missing or invalid curve25519/ed25519 key"
    algorithms = raw.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        return "algorithms is not a list of strings"
    if not verify_signed_json(raw, user_id, device_id, ed):
        return "the device's self-signature does not verify"
    return Device(user_id, device_id, curve, ed, tuple(algorithms[:16]))


def pin(existing: Device | None, seen: Device) -> tuple[Device, bool]:
    """Trust on first use: the device to keep, and whether the keys changed from the pin.

    A device that reappears with its pinned keys is undeleted. Once its keys changed it
    stays refused (the flag is sticky) until the operator removes the pin.
    """
    if existing is None:
        return seen, False
    if (existing.curve25519, existing.ed25519) != (seen.curve25519, seen.ed25519):
        return attrs.evolve(existing, keys_changed=True), True
    return attrs.evolve(existing, algorithms=seen.algorithms, deleted=False), False
