"""One raw line → a JSON object, or the reason it cannot be one. Never raises on bad input.

orjson reads almost every line. Two kinds of line need more care:

- **Deep nesting.** Every later stage nests a row's fields one level deeper than the row does
  (``evidence.metadata``, ``signals``, scored runs), and both orjson (writing) and pydantic's
  JSON reader (the exporters' re-read) stop at about 200–255 levels. A row nested deeper than
  :data:`MAX_ROW_DEPTH` is skipped as ``too_deeply_nested`` before anything else touches it.
- **Integers beyond 64 bits.** orjson reads them as rounded floats (or refuses them) and cannot
  write them back. A line holding a run of 19 or more digits is reread with the standard
  library, which keeps such integers exact; each one outside orjson's range becomes its exact
  decimal string (``123456789012345678901234567890`` → ``"123456789012345678901234567890"``),
  in the evidence and in the canonical JSON ``sig_hash`` is taken over.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import orjson

from distill.schemas import SkipReason

MAX_ROW_DEPTH = 128
"""Deepest nesting a row may have, counting the row object itself as level 1 (``{"a": [1]}`` is
2). Measured: a row of depth 200 still goes through collect, score and every export, 201 does
not (the exporters' pydantic re-read of the scored run stops); 128 leaves room for stages that
wrap records further. ``tests/test_hardening_inputs.py`` runs a row of exactly this depth
through the whole pipeline."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what orjson reads and writes as an int
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19  # the shortest integer outside that range has 19 digits
_LONG_INT = re.compile(rb"(?<![.\d])\d{19}(?![.eE])")  # a long run that is no float's digits
_DETAIL = 200
_BOM = b"\xef\xbb\xbf"


class RowSkip(NamedTuple):
    """Why a line is not a row, with a human-readable detail."""

    reason: SkipReason
    detail: str


def parse_row(data: bytes) -> dict[str, Any] | RowSkip:
    """Parse one line (its ending and any BOM already removed) into a JSON object.

    orjson refuses invalid UTF-8 as Python's decoder does, so a line is decoded only when
    orjson refused it (to tell invalid UTF-8 from invalid JSON) or it needs the exact reread.
    """
    long_digits = has_long_digits(data)
    exact = False
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as bad_utf8:
            return RowSkip(SkipReason.invalid_utf8, str(bad_utf8)[:_DETAIL])
        if "depth limit" in str(err):  # orjson reads at most 1024 levels
            detail = f"{err}; the limit is {MAX_ROW_DEPTH}"
            return RowSkip(SkipReason.too_deeply_nested, detail[:_DETAIL])
        if not long_digits:  # only an integer too long even for a float needs the second try
            return RowSkip(SkipReason.invalid_json, str(err)[:_DETAIL])
        try:
            value, exact = _exact_loads(text), True
        except (ValueError, RecursionError):
            return RowSkip(SkipReason.invalid_json, str(err)[:_DETAIL])
    if not isinstance(value, dict):
        return RowSkip(SkipReason.not_an_object, f"a JSON {type(value).__name__}")
    too_deep = depth_skip(value, data)
    if too_deep is not None:
        return too_deep
    if long_digits and not exact:  # orjson checked the syntax; reread for exact integers
        row: dict[str, Any] = _exact_loads(data.decode("utf-8"))
        return row
    return value


def has_long_digits(data: bytes) -> bool:
    """Whether ``data`` holds a run of 19 or more ASCII digits (``re``'s ``rb"\\d{19}"``).

    Every digit becomes ``0`` and every other byte a space, then one substring search: a tenth
    of the regex's time on a 2 KB line, and every line of every source pays it.
    """
    return _LONG_DIGITS in data.translate(_DIGITS_ONLY)


def parse_document(data: bytes) -> dict[str, Any] | RowSkip:
    """A whole JSON document (a file) → its object, parsed once, without a text copy of it.

    Like :func:`parse_row`, with a UTF-8 byte order mark allowed at the start.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if "UTF-8" in str(err):
            return RowSkip(SkipReason.invalid_utf8, str(err)[:_DETAIL])
        if "depth limit" not in str(err) and not _LONG_INT.search(data):
            return RowSkip(SkipReason.invalid_json, str(err)[:_DETAIL])
        return parse_row(data)  # the rare document that needs the careful reading
    if not isinstance(value, dict):
        return RowSkip(SkipReason.not_an_object, f"a JSON {type(value).__name__}")
    if _LONG_INT.search(data):
        return parse_row(data)  # integers beyond 64 bits, kept exact as in a line
    too_deep = depth_skip(value, data)
    return value if too_deep is None else too_deep


def depth_skip(row: Any, data: bytes | None = None) -> RowSkip | None:
    """A ``too_deeply_nested`` skip when ``row`` nests deeper than :data:`MAX_ROW_DEPTH`.

    With the row's raw ``data``, counting brackets rules out almost every row without a walk.
    """
    if data is not None and data.count(b"[") + data.count(b"{") <= MAX_ROW_DEPTH:
        return None
    depth = nesting_depth(row)
    if depth <= MAX_ROW_DEPTH:
        return None
    return RowSkip(
        SkipReason.too_deeply_nested,
        f"nested {depth} levels deep; the limit is {MAX_ROW_DEPTH}",
    )


def nesting_depth(value: Any) -> int:
    """Levels of arrays and objects: a scalar is 0, ``[]`` is 1, ``{"a": [1]}`` is 2."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: a row nested thousands deep must not hit the recursion limit
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _exact_loads(text: str) -> Any:
    """The standard library's parser, made as strict as orjson, with exact integers."""
    return json.loads(
        text, parse_int=_exact_int, parse_float=_finite_float, parse_constant=_no_constant
    )


def _exact_int(digits: str) -> int | str:
    if len(digits) <= 20:  # never hand int() thousands of digits (and Python's digit limit)
        value = int(digits)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    return digits


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number is infinity when parsed as double: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
