"""Signed JSON (spec: "Signing JSON") and unpadded base64, both shared by every part."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import vodozemac

from .._content import canonical_json


def b64encode(data: bytes) -> str:
    """Unpadded standard base64, as Matrix writes keys, ciphertexts and hashes."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Decode unpadded (or padded) standard or URL-safe base64; ``ValueError`` if invalid."""
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def signable_bytes(obj: dict[str, Any]) -> bytes:
    """What is signed: the canonical JSON of the object without ``signatures``/``unsigned``."""
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})


def sign_json(
    account: vodozemac.Account, obj: dict[str, Any], user_id: str, device_id: str
) -> dict[str, Any]:
    """A copy of ``obj`` with our device's ed25519 signature added."""
    signature = account.sign(signable_bytes(obj)).to_base64()
    signed = dict(obj)
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{device_id}"] = signature
    signed["signatures"] = signatures
    return signed


def verify_signed_json(obj: dict[str, Any], user_id: str, device_id: str, ed25519: str) -> bool:
    """Whether ``obj`` carries a valid signature of ``user_id``'s device key ``ed25519``."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict):
        return False
    by_user = signatures.get(user_id)
    if not isinstance(by_user, dict):
        return False
    signature = by_user.get(f"ed25519:{device_id}")
    if not isinstance(signature, str):
        return False
    try:
        key = vodozemac.Ed25519PublicKey.from_base64(ed25519)
        key.verify_signature(signable_bytes(obj), vodozemac.Ed25519Signature.from_base64(signature))
    except (ValueError, TypeError):
        return False
    return True
