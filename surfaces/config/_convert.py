"""The one cattrs converter for configuration, with strict hooks.

cattrs is lenient by default (``"false"`` becomes ``True``); these hooks accept a value
only in its own type, except text from the environment (``EnvStr``), which is parsed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cattrs

from surfaces.config._model import Secret
from surfaces.config._values import describe
from surfaces.config._yaml import yaml11_hint


class EnvStr(str):
    """Text that came from an environment variable: numbers and booleans are parsed
    from it; in YAML the value must already have the right type.
    """

    __slots__ = ()


class Invalid(ValueError):
    """A structuring problem whose message is shown as is."""


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return str(value)
    if value is None:
        raise Invalid("must be a string, got null (remove the key to use the default)")
    raise Invalid(f"must be a string, got {describe(value)}{yaml11_hint(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, EnvStr):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Invalid(f"must be true/false/1/0/yes/no, got {str(value)!r}")
    raise Invalid(f"must be true or false, got {describe(value)}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, EnvStr):
        try:
            return int(value.strip())
        except ValueError:
            raise Invalid(f"must be an integer, got {str(value)!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Invalid(f"must be an integer, got {describe(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, EnvStr):
        try:
            result = float(value.strip())
        except ValueError:
            raise Invalid(f"must be a number, got {str(value)!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise Invalid(f"must be a number, got {describe(value)}")
    if not math.isfinite(result):
        raise Invalid(f"must be a finite number, got {result!r}")
    return result


def _structure_str_tuple(value: Any, _: type) -> tuple[str, ...]:
    if isinstance(value, EnvStr):  # comma-separated in the environment
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if not isinstance(value, list | tuple):
        raise Invalid(f"must be a list of strings, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid(f"item {index} must be a string, got {describe(item)}")
    return tuple(value)


def _structure_str_mapping(value: Any, _: type) -> dict[str, str]:
    """A mapping of names to words: ``{httpx: debug}`` in YAML, ``httpx=debug,a.b=info``
    in the environment."""
    if isinstance(value, EnvStr):
        result: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            name, sep, word = item.partition("=")
            if not sep or not name.strip() or not word.strip():
                raise Invalid(f"must be name=value pairs separated by commas, got {str(value)!r}")
            result[name.strip()] = word.strip()
        return result
    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping of names to values, got {describe(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            got = describe(key) if not isinstance(key, str) else describe(item)
            raise Invalid(f"{key!r}: keys and values must be strings, got {got}{yaml11_hint(item)}")
    return dict(value)


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, str):
        return Secret(str(value))
    # Never echo the value: it may be a real secret typed without quotes.
    raise Invalid(f"must be a string, got {type(value).__name__}{yaml11_hint(value)}")


def _make_converter() -> cattrs.Converter:
    # Fields are structured one at a time (see _load), so every problem is reported.
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    converter.register_structure_hook_func(lambda t: t == Mapping[str, str], _structure_str_mapping)
    return converter


#: The one converter used for configuration (strict hooks; see module docstring).
CONVERTER = _make_converter()
