"""The firewall's second wall: each export re-reads the file it wrote before publishing it.

The re-read refuses the whole file (nothing is published) when a row is not a valid sample,
is one the export forbids, or repeats an id; it reads bytes with msgspec and checks what the
export forbids, at a few microseconds a row.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from distill.errors import ValidationFailed, format_validation_error
from distill.jsonio import iter_raw_lines, read_lines_numbered
from distill.limits import LineLimits
from distill.schemas.fast import FAST_TYPES
from distill.stages.prechecks import KEY_DTYPE, NO_KEY, id_key, lines_holding, repeated_keys

S = TypeVar("S", bound=msgspec.Struct)


def reread_check(
    model: type[BaseModel],
    check: Callable[[S], str | None],
    export: str,
    limit: int = LineLimits().export,
    *,
    view: type[msgspec.Struct] | None = None,
    at_most: AtMost | None = None,
) -> Callable[[Path], None]:
    """The firewall's second wall: re-read the written file and refuse it if anything slipped by.

    Each row is read as ``model``'s msgspec mirror (:mod:`distill.schemas.fast`; what it
    refuses, pydantic decides) and handed to ``check``, which refuses what the export forbids;
    ids must be unique. ``limit`` is the export line limit (:class:`LineLimits`); each error
    names the row's source file and line, never a line of the file that is not published.
    With ``view`` (``RagChecked``, ``SftChecked``), each row is read as that struct: only the
    fields the check reads, typed as the mirror types them, the rest skipped unbuilt (the
    record type checked the whole row as it was written: the first wall). A row the view
    refuses is read in full as above, so what it refuses and why is unchanged. With
    ``at_most``, no more than that many rows may share a value of its field (pairs per task).
    Memory stays flat as the file grows: 4 bytes a row per key (:func:`id_key`), and only rows
    whose key repeats are read again.
    """
    full = _sample_reader(model, cast(type[S], FAST_TYPES[model]))
    read = full if view is None else _view_reader(cast(type[S], view), full)

    def verify(path: Path) -> None:
        errors: list[str] = []
        keys = array("i")  # per line, its id's key (-1: no sample): 4 bytes a row
        groups = array("i")  # per line, the key of its at_most field's value (-1: none)
        field = None if at_most is None else at_most.field
        for line_no, data, _, size, _ in iter_raw_lines(path, limit, digest=False):
            sample = None
            if data is None:
                errors.append(f"row {line_no}: {size} bytes, over the limit {limit}")
            elif not data or data.isspace():
                errors.append(f"row {line_no}: blank line")
            elif isinstance(read_as := read(data), str):
                errors.append(f"{row_origin(data, line_no)}: {read_as}")
            else:
                sample = read_as
                problem = check(sample)
                if problem:
                    errors.append(f"{row_origin(data, line_no)}: {problem}")
            keys.append(NO_KEY if sample is None else id_key(str(getattr(sample, "id", ""))))
            if field is not None:
                value = None if sample is None else getattr(sample, field, None)
                groups.append(NO_KEY if value is None else id_key(str(value)))
        repeats = _repeated_ids(path, np.frombuffer(keys, dtype=KEY_DTYPE), read)
        if repeats:
            errors.append(f"{repeats} duplicate id(s) in the output")
        if at_most is not None:
            errors += _crowded(path, np.frombuffer(groups, dtype=KEY_DTYPE), read, at_most)
        if errors:
            raise ValidationFailed(
                f"export {export}: re-read found {len(errors)} bad row(s); nothing was written",
                errors,
                hint="this is a bug in distill: report it with the scored-runs that trigger it",
            )

    return verify


@dataclass(frozen=True)
class AtMost:
    """At most ``rows`` rows of an export may share a value of ``field``: ``AtMost("task_id",
    5, "task", "pairs")`` refuses a sixth pair of a task as "task T-1 has more than 5 pairs"."""

    field: str
    rows: int
    noun: str
    what: str


def _crowded(
    path: Path, groups: NDArray[np.int32], read: Callable[[bytes], Any], at_most: AtMost
) -> list[str]:
    """A message per value of ``at_most.field`` held by more than ``at_most.rows`` rows, at the
    first row over: only the rows whose key occurs that often are read again, and counted by
    the value itself (two values whose keys collide are two groups)."""
    present = groups[groups >= 0]
    values, counts = np.unique(present, return_counts=True)
    seen: Counter[str] = Counter()
    errors = []
    for line_no, data in read_lines_numbered(
        path, lines_holding(groups, values[counts > at_most.rows])
    ):
        value = str(getattr(read(data), at_most.field, ""))
        seen[value] += 1
        if seen[value] == at_most.rows + 1:
            over = f"{at_most.noun} {value} has more than {at_most.rows} {at_most.what}"
            errors.append(f"{row_origin(data, line_no)}: {over}")
    return errors


def _repeated_ids(path: Path, keys: NDArray[np.int32], read: Callable[[bytes], Any]) -> int:
    """How many rows repeat an id of an earlier row: the rows whose key repeats are read
    again and compared by the id itself (a key collision is no duplicate)."""
    wanted = lines_holding(keys, repeated_keys(keys)) if len(keys) else []
    ids = Counter(
        str(getattr(read(data), "id", "")) for _, data in read_lines_numbered(path, wanted)
    )
    return sum(count - 1 for count in ids.values())


def _view_reader(view: type[S], full: Callable[[bytes], S | str]) -> Callable[[bytes], S | str]:
    """bytes → the fields ``view`` holds; what it refuses is read by ``full`` and, when that
    accepts it (pydantic's laxer reading), converted to ``view``."""
    decode = msgspec.json.Decoder(view).decode

    def read(data: bytes) -> S | str:
        try:
            return decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            sample = full(data)
        if isinstance(sample, str):
            return sample
        try:
            return msgspec.convert(sample, view, from_attributes=True)
        except msgspec.ValidationError as err:
            return f"not readable as {view.__name__}: {err}"

    return read


def _sample_reader(model: type[BaseModel], struct: type[S]) -> Callable[[bytes], S | str]:
    """bytes → the sample as ``struct``, or why ``model`` refuses them."""
    decode = msgspec.json.Decoder(struct).decode

    def read(data: bytes) -> S | str:
        try:
            return decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        try:  # msgspec is strict: pydantic decides what it refused
            valid = model.model_validate_json(data)
        except ValidationError as err:
            return format_validation_error(err)
        try:
            return msgspec.convert(valid.model_dump(mode="json", by_alias=True), struct)
        except msgspec.ValidationError as err:
            return f"not readable as {struct.__name__}: {err}"

    return read


def row_origin(row: bytes | dict[str, Any], output_line: int | None = None) -> str:
    """Where a dataset row came from, for messages: its source file and line."""
    if isinstance(row, bytes):
        try:
            row = orjson.loads(row)
        except orjson.JSONDecodeError:
            row = {}
    for key in ("provenance", "chosen_provenance"):
        origin = row.get(key) if isinstance(row, dict) else None
        if isinstance(origin, dict) and origin.get("source_file") and origin.get("line"):
            return f"{origin['source_file']}:{origin['line']}"
    return f"row {output_line} of the output" if output_line else "no provenance"
