"""The bot's device identity: its crypto machine loaded from the state database, or a
new one created — and what a lost database means.

An identity is the device's Olm account (its curve25519/ed25519 keys) and everything
keyed to it. It lives in the state database (``crypto_*`` tables, pickled with the
pickle key) and belongs to one device id. At start, after login:

* The database holds the identity of the logged-in device and the homeserver lists
  that device with the same keys (or none yet: the first upload is still pending) →
  the machine is loaded: same keys, same sessions.
* The database holds none (a first start, or a **lost database**) and the homeserver
  lists no keys for the device → a new identity on this device (the first start of a
  bot that ran without encryption keeps its device id and gains keys).
* The homeserver lists keys for the device that the database does not hold (a lost or
  replaced database), or other keys than ours, or the database is a restored copy made
  by ``surfaces backup`` (``Store.BACKUP_MARK_KEY``: its ratchets and key counters are
  older than what peers and the server saw) → the identity is lost. Re-using the
  device id does not work: a new account numbers its one-time keys from the start
  again and Synapse refuses a re-upload of a key id it still holds with other
  content, and every peer that pinned the old keys of that device id refuses the new
  ones (trust on first use; nio, matrix-rust-sdk and our own machine all do). So the
  bot logs in as a **new device** (``<device_id>_<6 hex>``, with ``MATRIX_PASSWORD``),
  deletes the old device (password UIA; its keys and one-time keys go with it) and
  creates the identity there. Users' clients see the bot's device list change, pick
  the new device up and share their room keys with it on their next message; the bot
  starts new outbound sessions, so its next reply is readable. What the old identity
  could read (earlier messages) stays unreadable to the new one. The operator is told
  in the log (``crypto_identity_lost``). With only an access token configured the bot
  cannot choose a device: it stops with instructions instead.

The device id of the identity is the one later password logins use
(:func:`identity_device_id`), so the bot keeps that device across restarts.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import structlog
import trio

from matrix_client import MatrixClient, MatrixError
from matrix_client.crypto import OlmMachine, PickleKeyError, SqliteCryptoStore, StoreError
from surfaces.config import MatrixConfig
from surfaces.core import FatalError
from surfaces.session.crypto import Crypto
from surfaces.session.login import DEVICE_DISPLAY_NAME, DEVICE_KEY, TOKEN_KEY
from surfaces.session.pickle_key import PICKLE_KEY_FILE, load_pickle_key
from surfaces.session.room_state import RoomStates
from surfaces.state import Store

log = structlog.get_logger(__name__)


def identity_device_id(store: Store) -> str | None:
    """The device id of the identity the database holds (password logins use it)."""
    record = store.open_crypto_store().load_account()
    return None if record is None else record.device_id


async def open_crypto(
    matrix: MatrixClient, store: Store, config: MatrixConfig, state_dir: Path
) -> Crypto:
    """The logged-in device's crypto, loaded or created (see the module docstring)."""
    if store.inline:
        key = load_pickle_key(config.pickle_key, state_dir)
    else:
        key = await trio.to_thread.run_sync(load_pickle_key, config.pickle_key, state_dir)
    crypto_store = store.open_crypto_store()
    restored = await store.get_value(Store.BACKUP_MARK_KEY)
    if restored is not None and crypto_store.load_account() is not None:
        log.warning(
            "crypto_state_from_backup",
            copied_at=restored,
            consequence="its keys are older than what peers saw: the bot starts as a new device",
        )
        machine = None
    else:
        machine = await _load(matrix, crypto_store, key)
    if machine is None:
        await store.forget_crypto_identity()
        if await _server_keys(matrix) is not None:
            await _move_to_new_device(matrix, store, config)
        assert matrix.user_id is not None
        assert matrix.device_id is not None
        machine = OlmMachine.create(
            matrix.user_id, matrix.device_id, store=crypto_store, pickle_key=key
        )
        await store.save_crypto(machine.take_changes())
        log.info(
            "crypto_identity_created",
            device_id=machine.device_id,
            ed25519=machine.identity_keys.ed25519,
        )
    else:
        log.info(
            "crypto_identity_loaded",
            device_id=machine.device_id,
            ed25519=machine.identity_keys.ed25519,
        )
    return Crypto(matrix, store, machine, crypto_store, key, RoomStates(matrix))


async def _load(
    matrix: MatrixClient, crypto_store: SqliteCryptoStore, key: bytes
) -> OlmMachine | None:
    """The stored identity if it is still this device's on the server, else ``None``."""
    record = crypto_store.load_account()
    if record is None:
        return None
    if (record.user_id, record.device_id) != (matrix.user_id, matrix.device_id):
        log.warning(
            "crypto_identity_replaced",
            reason="logged in as another device",
            stored_device_id=record.device_id,
            device_id=matrix.device_id,
        )
        return None
    try:
        machine = OlmMachine.load(crypto_store, pickle_key=key)
    except PickleKeyError as exc:
        raise FatalError(
            "the crypto state in the database does not open with the pickle key: restore "
            f"{PICKLE_KEY_FILE} (or matrix.pickle_key) from the backup of this database "
            "(docs/operations.md, 'The pickle key')"
        ) from exc
    except StoreError as exc:
        raise FatalError(f"the crypto state in the database is unreadable: {exc}") from exc
    published = bool(record.data.get("shared"))
    theirs = await _server_keys(matrix)
    ours = machine.identity_keys.ed25519
    if theirs == ours or (theirs is None and not published):
        return machine
    log.warning(
        "crypto_identity_replaced",
        reason="the homeserver lists other keys for this device"
        if theirs
        else "the homeserver lost this device's keys",
        device_id=matrix.device_id,
    )
    return None


async def _server_keys(matrix: MatrixClient) -> str | None:
    """The ed25519 key the homeserver lists for our device, ``None`` when it lists none."""
    user_id, device_id = matrix.user_id, matrix.device_id
    assert user_id is not None
    assert device_id is not None
    answer = await matrix.keys_query({"device_keys": {user_id: [device_id]}})
    listed = answer.get("device_keys", {})
    device = listed.get(user_id, {}).get(device_id) if isinstance(listed, dict) else None
    if not isinstance(device, dict):
        return None
    keys = device.get("keys")
    value = keys.get(f"ed25519:{device_id}") if isinstance(keys, dict) else None
    return value if isinstance(value, str) else ""


async def _move_to_new_device(matrix: MatrixClient, store: Store, config: MatrixConfig) -> None:
    """Log in as a new device and delete the old one (its identity is lost)."""
    old = matrix.device_id
    if config.password is None or config.access_token is not None:
        raise FatalError(
            f"the encryption keys of device {old} are lost (the state database does not hold "
            "them) but the homeserver still lists that device's keys. Set MATRIX_PASSWORD "
            "(and no MATRIX_ACCESS_TOKEN) so the bot can log in as a new device, or configure "
            "the access token of a new device (docs/operations.md, 'A lost database')"
        )
    new = f"{config.device_id}_{secrets.token_hex(3).upper()}"
    answer = await matrix.login_password(
        config.user_id,
        config.password.reveal(),
        device_id=new,
        device_display_name=DEVICE_DISPLAY_NAME,
    )
    await store.set_value(TOKEN_KEY, answer.access_token)
    await store.set_value(DEVICE_KEY, new)
    assert old is not None
    try:
        await matrix.delete_device(old, password=config.password.reveal())
    except MatrixError as exc:
        log.warning(
            "crypto_old_device_not_deleted",
            device_id=old,
            status=exc.status,
            errcode=exc.errcode,
            hint="delete it in a client's session list; peers keep encrypting to it meanwhile",
        )
    log.warning(
        "crypto_identity_lost",
        old_device_id=old,
        new_device_id=new,
        consequence=(
            "the bot has a new device: users' clients see it and share their keys with it "
            "from their next message; messages from before cannot be read by it"
        ),
    )
