"""One raw line → an evidence.v1 payload, or a skip reason. Never raises on bad input.

Collect writes the payload after validating it against :class:`EvidenceRecord`; building a
plain dict first and validating it once is several times cheaper than building the model and
dumping it again, and writes the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from distill.jsonio import RawLine, canonical_hash
from distill.schemas import EvidenceRecord, SkipReason
from distill.sources.parse import RowSkip, depth_skip, parse_row
from distill.sources.spec import Source, text_of
from distill.text import extract_file_paths, extract_validation_steps


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """Either an evidence ``payload`` or a ``skip`` reason with a human-readable ``detail``."""

    payload: dict[str, Any] | None = None
    skip: SkipReason | None = None
    detail: str = ""

    @property
    def evidence(self) -> EvidenceRecord | None:
        """The payload as a validated record (for library users; collect writes the payload)."""
        return None if self.payload is None else EvidenceRecord.model_validate(self.payload)


def evidence_from_line(
    source: Source, raw: RawLine, *, source_file: str, recorded_at: str, max_line_bytes: int
) -> RowOutcome:
    """One line of a stream → evidence, or a skip with its reason. Never raises."""
    if raw.data is None:
        return RowOutcome(
            skip=SkipReason.line_too_long, detail=f"{raw.size} bytes > limit {max_line_bytes}"
        )
    try:
        row = parse_row(raw.data)
        if isinstance(row, RowSkip):
            return RowOutcome(skip=row.reason, detail=row.detail)
        return _evidence(
            source, row, source_file=source_file, line=raw.line_no, recorded_at=recorded_at
        )
    except Exception as err:  # the last resort: nothing one line holds may stop a run
        return unprocessable(err)


def evidence_from_row(
    source: Source, row: dict[str, Any], *, source_file: str, line: int, recorded_at: str
) -> RowOutcome:
    """One parsed row (as :func:`parse_row` returns it) → evidence, or a skip. Never raises."""
    try:
        too_deep = depth_skip(row)
        if too_deep is not None:
            return RowOutcome(skip=too_deep.reason, detail=too_deep.detail)
        return _evidence(source, row, source_file=source_file, line=line, recorded_at=recorded_at)
    except Exception as err:  # the last resort: nothing one row holds may stop a run
        return unprocessable(err)


def unprocessable(err: Exception) -> RowOutcome:
    """The skip for a row that raised where nothing should: the exception's type and message."""
    return RowOutcome(
        skip=SkipReason.unprocessable_row, detail=f"{type(err).__name__}: {err}"[:200]
    )


def _evidence(
    source: Source, row: dict[str, Any], *, source_file: str, line: int, recorded_at: str
) -> RowOutcome:
    spec = source.spec
    native_id = _scalar_text(row.get(spec.id_field))
    if native_id is None:
        return RowOutcome(skip=SkipReason.missing_id, detail=f"no usable {spec.id_field!r}")
    raw_time = row.get(spec.time_field)
    if raw_time is None or (isinstance(raw_time, str) and not raw_time.strip()):
        return RowOutcome(skip=SkipReason.missing_timestamp, detail=f"no {spec.time_field!r}")
    created_at = normalise_time(raw_time)
    if created_at is None:
        return RowOutcome(
            skip=SkipReason.invalid_timestamp,
            detail=f"{spec.time_field}={text_of(raw_time)[:80]!r} is not ISO-8601",
        )
    instruction = source.instruction(row)
    response = source.response(row)
    record_id = f"{source.name}:{native_id}"
    consumed = source.consumed
    payload = {
        "schema": "evidence.v1",
        "id": record_id,
        "stream": source.name,
        "native_id": native_id,
        "task_id": _scalar_text(row.get(spec.task_field)) if spec.task_field else None,
        "created_at": created_at,
        "instruction": instruction,
        "response": response,
        "file_paths": _file_paths(row, spec.file_fields, instruction, response),
        "validation_steps": extract_validation_steps(response),
        "signals": source.signals(row),
        "metadata": {key: value for key, value in row.items() if key not in consumed},
        "provenance": {
            "stream": source.name,
            "source_file": source_file,
            "line": line,
            "sig_hash": canonical_hash(row),
            "source_run_id": record_id,
            "recorded_at": recorded_at,
        },
    }
    return RowOutcome(payload=payload)


_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")


def normalise_time(value: Any) -> str | None:
    """ISO-8601 → UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; naive times are taken as UTC.

    RFC 3339's lower-case ``t`` and ``z`` are accepted: ``2026-01-01t00:00:00z``.
    """
    if not isinstance(value, str):
        return None
    if _CANONICAL_TIME.fullmatch(value):  # already canonical (most rows): validate, keep as is
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 falls off the calendar in UTC
        return None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _file_paths(row: dict[str, Any], fields: list[str], *texts: str) -> list[str]:
    paths: dict[str, None] = {}
    for name in fields:
        value = row.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.strip():
                paths.setdefault(item.strip(), None)
    for text in texts:
        for path in extract_file_paths(text):
            paths.setdefault(path, None)
    return sorted(paths)
