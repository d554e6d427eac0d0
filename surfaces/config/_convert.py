"""The one cattrs converter for configuration, with strict hooks.

cattrs is lenient by default (``"false"`` becomes ``True``); these hooks accept a value
only in its own type, except text from the environment (``EnvStr``), which is parsed.
"""

from __future__ import annotations

import math
from typing import Any

import cattrs
import cattrs.v

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


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, str):
        return Secret(str(value))
    # Never echo the value: it may be a real secret typed without quotes.
    raise Invalid(f"must be a string, got {type(value).__name__}{yaml11_hint(value)}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    return converter


#: The one converter used for configuration (strict hooks; see module docstring).
CONVERTER = _make_converter()

REQUIRED = "\x00required"


def format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, Invalid):
        return str(exc)
    if isinstance(exc, KeyError):
        return REQUIRED
    return cattrs.v.format_exception(exc, type_)
