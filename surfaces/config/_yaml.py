"""Strict YAML reading: the safe loader, duplicate keys rejected, errors with a line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class YamlProblem(Exception):
    """Reading or parsing a YAML file failed; the message is ready to show."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file strictly (safe loader, duplicate keys rejected).

    Raises ``YamlProblem`` with a message such as ``line 3, column 5: invalid YAML: ...``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"cannot read: not UTF-8 text ({exc.reason})")
    except OSError as exc:
        raise YamlProblem(f"cannot read: {exc.strerror or exc}")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        raise YamlProblem(f"{where}invalid YAML: {what}")
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}")


def yaml11_hint(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return " (quote the value in YAML: unquoted yes/no/on/off/null and numbers are not text)"
    return ""
