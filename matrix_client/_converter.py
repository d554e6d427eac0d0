"""The one cattrs converter between Matrix JSON and the models.

Two rules beyond cattrs' defaults:

* Scalars are strict: cattrs would turn ``123`` into ``"123"`` for a ``str``
  field and ``"false"`` into ``True``; a homeserver that sends those is sending
  garbage, and garbage must not look valid.
* Events and rooms are parsed one by one: a malformed item is dropped with a
  ``matrix_event_malformed`` / ``matrix_room_malformed`` warning and the rest of
  the response survives. A bad event can never stop the sync loop.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs
import structlog
from cattrs.gen import make_dict_structure_fn

from ._errors import ResponseFormatError
from ._models import (
    DeviceLists,
    InvitedRoom,
    JoinedRoom,
    JsonDict,
    LeftRoom,
    RoomEvent,
    StrippedStateEvent,
    SyncResponse,
    ToDevice,
    ToDeviceEvent,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

converter = cattrs.Converter(detailed_validation=False)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _json_object(value: Any, _: type) -> JsonDict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _attrs_hook_factory(cls: type) -> Any:
    # cattrs would happily read a string as an object with every field missing.
    inner = make_dict_structure_fn(cls, converter)

    def hook(value: Any, _: type) -> Any:
        return inner(_json_object(value, dict), cls)

    return hook


converter.register_structure_hook_factory(attrs.has, _attrs_hook_factory)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(bool, _strict_bool)


def _register_exact(tp: Any, hook: Any) -> None:
    """A hook for one generic alias (``dict[str, Any]`` is not a class to dispatch on)."""
    converter.register_structure_hook_func(lambda t: t == tp, hook)


_register_exact(JsonDict, _json_object)


def _opt_str(raw: JsonDict, key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    return _strict_str(value, str)


def _structure_room_event(raw: Any, _: type) -> RoomEvent:
    # Hand-written: the required fields are exactly what the bot relies on, and
    # optional ones degrade to defaults instead of failing the event.
    raw = _json_object(raw, dict)
    content = _json_object(raw.get("content"), dict)
    ts = raw.get("origin_server_ts", 0)
    unsigned = raw.get("unsigned")
    redacts = raw.get("redacts")
    if redacts is None and raw.get("type") == "m.room.redaction":
        redacts = content.get("redacts")  # room version 11 moved it into content
    return RoomEvent(
        event_id=_strict_str(raw.get("event_id"), str),
        type=_strict_str(raw.get("type"), str),
        sender=_strict_str(raw.get("sender"), str),
        origin_server_ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
        content=content,
        state_key=_opt_str(raw, "state_key"),
        unsigned=unsigned if isinstance(unsigned, dict) else {},
        redacts=redacts if isinstance(redacts, str) else None,
    )


def _structure_stripped(raw: Any, _: type) -> StrippedStateEvent:
    raw = _json_object(raw, dict)
    return StrippedStateEvent(
        type=_strict_str(raw.get("type"), str),
        state_key=_strict_str(raw.get("state_key"), str),
        sender=_strict_str(raw.get("sender"), str),
        content=_json_object(raw.get("content"), dict),
    )


def _structure_to_device(raw: Any, _: type) -> ToDeviceEvent:
    raw = _json_object(raw, dict)
    return ToDeviceEvent(
        type=_strict_str(raw.get("type"), str),
        sender=_strict_str(raw.get("sender"), str),
        content=_json_object(raw.get("content"), dict),
    )


def _string_list(raw: Any, what: str) -> list[str]:
    """The strings of a list; anything else is dropped with one log line."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        log.warning("matrix_sync_field_malformed", field=what, value_type=type(raw).__name__)
        return []
    strings = [v for v in raw if isinstance(v, str)]
    if len(strings) != len(raw):
        log.warning("matrix_sync_field_malformed", field=what, dropped=len(raw) - len(strings))
    return strings


def _structure_to_device_block(raw: Any, _: type) -> ToDevice:
    if not isinstance(raw, dict):
        if raw is not None:
            log.warning("matrix_sync_field_malformed", field="to_device")
        return ToDevice()
    return ToDevice(events=converter.structure(raw.get("events"), list[ToDeviceEvent]))


def _structure_device_lists(raw: Any, _: type) -> DeviceLists:
    if not isinstance(raw, dict):
        if raw is not None:
            log.warning("matrix_sync_field_malformed", field="device_lists")
        raw = {}
    return DeviceLists(
        changed=_string_list(raw.get("changed"), "device_lists.changed"),
        left=_string_list(raw.get("left"), "device_lists.left"),
    )


def _key_counts(raw: Any, _: type) -> dict[str, int]:
    """``device_one_time_keys_count``: non-negative integer counts; the rest dropped."""
    if not isinstance(raw, dict):
        return {}
    counts = {
        k: v
        for k, v in raw.items()
        if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }
    if len(counts) != len(raw):
        log.warning(
            "matrix_sync_field_malformed",
            field="device_one_time_keys_count",
            dropped=len(raw) - len(counts),
        )
    return counts


def _fallback_types(raw: Any, _: type) -> list[str] | None:
    return None if raw is None else _string_list(raw, "device_unused_fallback_key_types")


_FALLBACK_KEY = "device_unused_fallback_key_types"
_UNSTABLE_FALLBACK_KEY = "org.matrix.msc2732.device_unused_fallback_key_types"


def _structure_sync(raw: Any, _: type) -> SyncResponse:
    raw = _json_object(raw, dict)
    if _FALLBACK_KEY not in raw and _UNSTABLE_FALLBACK_KEY in raw:
        raw = {**raw, _FALLBACK_KEY: raw[_UNSTABLE_FALLBACK_KEY]}
    return _sync_response(raw, SyncResponse)


converter.register_structure_hook(RoomEvent, _structure_room_event)
converter.register_structure_hook(StrippedStateEvent, _structure_stripped)
converter.register_structure_hook(ToDeviceEvent, _structure_to_device)
converter.register_structure_hook(DeviceLists, _structure_device_lists)
converter.register_structure_hook(ToDevice, _structure_to_device_block)


def _describe(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        event_id = raw.get("event_id")
        event_type = raw.get("type")
        return {
            "event_id": event_id if isinstance(event_id, str) else None,
            "event_type": event_type if isinstance(event_type, str) else None,
        }
    return {"value_type": type(raw).__name__}


def _tolerant_list(item_type: type[T]) -> Any:
    def hook(raw: Any, _: type) -> list[T]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            log.warning("matrix_event_malformed", reason="event list is not a list")
            return []
        items: list[T] = []
        for entry in raw:
            try:
                items.append(converter.structure(entry, item_type))
            except Exception as exc:  # any malformed shape: skip this one event
                log.warning("matrix_event_malformed", reason=str(exc), **_describe(entry))
        return items

    return hook


def _raw_event_list(raw: Any, _: type) -> list[JsonDict]:
    if not isinstance(raw, list):
        return []
    return [entry for entry in raw if isinstance(entry, dict)]


def _tolerant_rooms(room_type: type[T]) -> Any:
    def hook(raw: Any, _: type) -> dict[str, T]:
        if not isinstance(raw, dict):
            return {}
        rooms: dict[str, T] = {}
        for room_id, value in raw.items():
            try:
                rooms[room_id] = converter.structure(value, room_type)
            except Exception as exc:
                log.warning("matrix_room_malformed", room_id=room_id, reason=str(exc))
        return rooms

    return hook


for _item in (RoomEvent, StrippedStateEvent, ToDeviceEvent):
    _register_exact(list[_item], _tolerant_list(_item))
_register_exact(dict[str, int], _key_counts)
_register_exact(list[str] | None, _fallback_types)
_register_exact(list[JsonDict], _raw_event_list)
for _room in (JoinedRoom, InvitedRoom, LeftRoom):
    _register_exact(dict[str, _room], _tolerant_rooms(_room))
# Last: cattrs resolves field hooks when it generates a function, so the one
# SyncResponse wraps is generated after every hook above is registered.
_sync_response = make_dict_structure_fn(SyncResponse, converter)
converter.register_structure_hook(SyncResponse, _structure_sync)


def structure(raw: Any, cls: type[T], *, what: str) -> T:
    """Structure a whole response; a top-level mismatch is a ResponseFormatError."""
    try:
        return converter.structure(raw, cls)
    except Exception as exc:
        raise ResponseFormatError(None, 200, f"malformed {what} response: {exc}") from exc


def structure_events(raw: Any) -> list[RoomEvent]:
    """A list of room events, malformed ones skipped."""
    return converter.structure(raw, list[RoomEvent])
