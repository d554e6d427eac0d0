"""Strict YAML reading: the safe loader, duplicate keys rejected, errors with a line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class YamlProblem(Exception):
    """Reading or parsing a YAML file failed.

    ``message`` is ready to show; ``line`` (1-based) is where the problem starts, when
    the file was read but does not parse.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


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

    Raises ``YamlProblem`` with a message such as ``line 3, column 5: invalid YAML: ...``
    that points at the line where the problem starts (see :func:`_syntax_problem`).
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
        raise _syntax_problem(text, exc)
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}")


# Contexts whose own mark is where the trouble began: an unclosed quote or bracket is
# only noticed where the file ends or the next construct cannot fit.
_OPENING_CONTEXTS = frozenset(
    {
        "while scanning a quoted scalar",
        "while parsing a flow sequence",
        "while parsing a flow mapping",
        "while scanning a block scalar",
        "while scanning a simple key",
    }
)


def _syntax_problem(text: str, exc: yaml.MarkedYAMLError) -> YamlProblem:
    """A syntax error located where the problem starts, not where PyYAML noticed it.

    PyYAML reports the position where parsing could not go on. For an unclosed quote
    or bracket that is the end of the file, and for a key without its ``:`` (or a
    stray quote) it is the next line, because the value silently ran on over the
    line break. So: lead with the opening construct's position when the context is
    one of those, or with the start of a scalar that runs over several lines up to
    the problem.
    """
    problem = exc.problem or exc.context or "syntax error"
    noticed = exc.problem_mark or exc.context_mark
    lead = noticed
    note = ""
    if exc.context_mark is not None and (
        exc.context in _OPENING_CONTEXTS or (noticed is not None and noticed.index >= len(text))
    ):
        lead = exc.context_mark
        note = f"{exc.context} that starts here"
    else:
        scalar = _runaway_scalar(text, noticed)
        if scalar is not None:
            lead = scalar
            note = (
                f"the value that starts here runs on to line {noticed.line + 1}:"  # type: ignore[union-attr]
                " is a closing quote or a ':' missing?"
            )
        elif exc.context and exc.context_mark is not None:
            note = f"{exc.context} at line {exc.context_mark.line + 1}"
        elif exc.context:
            note = exc.context
    if "'\\t'" in problem:
        note = "indent with spaces: YAML does not allow tabs there"
    if lead is None:
        return YamlProblem(f"invalid YAML: {problem}")
    if noticed is not None and noticed.line != lead.line:
        note += f"; noticed at line {noticed.line + 1}, column {noticed.column + 1}"
    where = f"line {lead.line + 1}, column {lead.column + 1}"
    detail = f" ({note})" if note else ""
    return YamlProblem(f"{where}: invalid YAML: {problem}{detail}", line=lead.line + 1)


def _runaway_scalar(text: str, noticed: yaml.Mark | None) -> yaml.Mark | None:
    """The start of a scalar that spans lines and ends on the problem's line, if any."""
    if noticed is None:
        return None
    last: yaml.ScalarToken | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= noticed.index:
                break
            if isinstance(token, yaml.ScalarToken):
                last = token
    except yaml.YAMLError:
        pass  # the tokens up to the error are what we need
    if last is None or last.start_mark.line == last.end_mark.line:
        return None
    if last.end_mark.line != noticed.line:
        return None
    return last.start_mark


def yaml11_hint(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return " (quote the value in YAML: unquoted yes/no/on/off/null and numbers are not text)"
    return ""
