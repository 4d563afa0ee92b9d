"""Field paths: how a source's settings name a value inside a row.

A path is dotted names, list indices as numbers (negative from the end):
``"info.submission"``, ``"messages.0.content"``, ``"history.-1.timestamp"``. A key that itself
contains a dot is read as written first, so a row ``{"a.b": 1}`` keeps working with ``"a.b"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PATH_HINT = (
    'a field path is dotted names with list indices as numbers, e.g. "task_id", '
    '"info.submission", "messages.0.content", "history.-1.timestamp"'
)
_SEGMENT = re.compile(r"[^.\s](?:[^.]*[^.\s])?")
_INDEX = re.compile(r"-?\d+")


def check_path(path: str) -> str:
    """``path`` if it is a well-formed field path, else ValueError naming how paths are written."""
    if not path or not all(_SEGMENT.fullmatch(part) for part in path.split(".")):
        raise ValueError(f"{path!r} is not a field path: {PATH_HINT}")
    return path


def get_path(row: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in ``row``, or None when any step of it is absent."""
    if path in row:
        return row[path]
    if "." not in path:
        return None
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif (
            isinstance(value, list)
            and _INDEX.fullmatch(part)
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]  # a negative index counts from the end: "history.-1"
        else:
            return None
    return value


def top_field(row_keys: Mapping[str, Any] | None, path: str) -> str:
    """The row field a path starts from (the whole path when the row has it as a key)."""
    if row_keys is not None and path in row_keys:
        return path
    return path.split(".", 1)[0]


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return bool(left == right)


def matches(row: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """Whether ``row`` passes a ``where`` filter: every path equals its value (or one of a list)."""
    for path, wanted in where.items():
        value = get_path(row, path)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(json_equal(value, option) for option in options):
            return False
    return True


def scalar_text(value: Any) -> str | None:
    """An id as text: a non-blank string (stripped) or an integer; anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
