"""The bot's ``/sync`` filter, and whether the homeserver lets it hide our own events."""

from __future__ import annotations

import uuid

import structlog

from matrix_client import MatrixClient, MatrixError, TransportError
from surfaces.session import homeserver_unavailable

log = structlog.get_logger(__name__)

SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 50},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
#: The spec version with ``unsigned.membership`` (MSC4115), which intake needs to
#: recognise pre-join history once the filter hides our own join event.
MEMBERSHIP_ON_EVENTS_VERSION = "v1.11"


def build_sync_filter(own_user_id: str, *, hide_own: bool) -> dict:
    """The bot's sync filter, unique to this process.

    Unique: Synapse caches /sync responses for a while keyed by (since, filter
    id, device…), so a restart with a lost database would otherwise be served the
    old history as if it were new. ``hide_own``: the timeline leaves out the bot's
    own events (``not_senders``), so its replies do not wake its own long-poll (one
    /sync less per turn, for the bot and the homeserver; bench/RESULTS.md).
    """
    room = {**SYNC_FILTER["room"], "not_rooms": [f"!surfaces-{uuid.uuid4().hex}:invalid"]}
    if hide_own:
        room["timeline"] = {**room["timeline"], "not_senders": [own_user_id]}
    return {**SYNC_FILTER, "room": room}


async def hides_own_events(matrix: MatrixClient) -> bool:
    """Whether the homeserver sends ``unsigned.membership`` (spec v1.11+), without
    which hiding our own join would let pre-join history through as prompts.

    A server that answers ``/versions`` with an error is taken as older; one that
    does not answer raises (the caller waits for it)."""
    try:
        versions = await matrix.versions()
    except (MatrixError, TransportError) as exc:
        if homeserver_unavailable(exc):
            raise  # at start-up: waited for (surfaces.app.startup), not guessed
        log.warning("matrix_versions_failed", error=str(exc), own_events_filtered=False)
        return False
    hide = versions.at_least(MEMBERSHIP_ON_EVENTS_VERSION)
    if not hide:
        log.info(
            "own_events_not_filtered",
            reason=f"homeserver older than {MEMBERSHIP_ON_EVENTS_VERSION}",
            versions=versions.versions,
        )
    return hide
