"""One raw line (or unit) → an evidence.v1 payload, or a skip reason. Never raises on bad input.

Collect writes the payload after validating it against :class:`EvidenceRecord`; building a
plain dict first and validating it once is several times cheaper than building the model and
dumping it again, and writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from distill.jsonio import RawLine, canonical_hash
from distill.schemas import EvidenceRecord, SkipReason
from distill.sources.parse import RowSkip, depth_skip, parse_row
from distill.sources.paths import get_path, scalar_text
from distill.sources.spec import Source, text_of
from distill.sources.times import normalise_time, record_time
from distill.sources.units import Unit

__all__ = [
    "Origin",
    "RowOutcome",
    "evidence_from_line",
    "evidence_from_row",
    "evidence_from_unit",
    "normalise_time",
    "unprocessable",
]
from distill.text import extract_validation_steps


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
        return _outcome(_evidence(source, row, Origin(source_file, raw.line_no), recorded_at))
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
        return _outcome(_evidence(source, row, Origin(source_file, line), recorded_at))
    except Exception as err:  # the last resort: nothing one row holds may stop a run
        return unprocessable(err)


def unprocessable(err: Exception) -> RowOutcome:
    """The skip for a row that raised where nothing should: the exception's type and message."""
    return RowOutcome(
        skip=SkipReason.unprocessable_row, detail=f"{type(err).__name__}: {err}"[:200]
    )


class Origin(NamedTuple):
    """Where a row came from: the provenance of the evidence it becomes."""

    source_file: str
    line: int
    line_end: int | None = None
    pointer: str | None = None
    sig_hash: str | None = None  # None: the canonical hash of the row (a single line)


def evidence_from_unit(
    source: Source,
    unit: Unit,
    *,
    recorded_at: str,
    verdicts: Mapping[str, Any] | None = None,
) -> RowOutcome:
    """One unit a format reader yielded → evidence, or its skip. Never raises.

    ``verdicts`` (id → verdict, from a verdicts side file) overrides the row's own verdict.
    """
    return _outcome(unit_payload(source, unit, recorded_at=recorded_at, verdicts=verdicts))


def unit_payload(
    source: Source,
    unit: Unit,
    *,
    recorded_at: str,
    verdicts: Mapping[str, Any] | None = None,
) -> dict[str, Any] | RowOutcome:
    """:func:`evidence_from_unit` for collect's hot path: the payload itself (no outcome made
    around it, once per row), or the skip's outcome. Never raises."""
    row = unit.row
    if row is None:
        return RowOutcome(skip=unit.skip or SkipReason.unprocessable_row, detail=unit.detail)
    origin = Origin(unit.source_file, unit.line, unit.line_end, unit.pointer, unit.sig_hash or None)
    try:
        # A line's row was measured as it was parsed; a row a format built is measured here.
        too_deep = None if unit.line_end is None else depth_skip(row)
        if too_deep is not None:
            return RowOutcome(skip=too_deep.reason, detail=too_deep.detail)
        return _evidence(source, row, origin, recorded_at, verdicts)
    except Exception as err:  # the last resort: nothing one unit holds may stop a run
        return unprocessable(err)


def _outcome(result: dict[str, Any] | RowOutcome) -> RowOutcome:
    return result if isinstance(result, RowOutcome) else RowOutcome(payload=result)


def _evidence(
    source: Source,
    row: dict[str, Any],
    origin: Origin,
    recorded_at: str,
    verdicts: Mapping[str, Any] | None = None,
) -> dict[str, Any] | RowOutcome:
    """The evidence payload of a row, or the skip of a row without a usable id or time."""
    spec = source.spec
    native_id = scalar_text(get_path(row, spec.id_field))
    if native_id is None:
        return RowOutcome(skip=SkipReason.missing_id, detail=f"no usable {spec.id_field!r}")
    raw_time = get_path(row, spec.time_field)
    if raw_time is None or (isinstance(raw_time, str) and not raw_time.strip()):
        return RowOutcome(skip=SkipReason.missing_timestamp, detail=f"no {spec.time_field!r}")
    created_at = record_time(raw_time, epoch=spec.epoch_times)
    if created_at is None:
        expected = "ISO-8601 or epoch seconds/milliseconds" if spec.epoch_times else "ISO-8601"
        return RowOutcome(
            skip=SkipReason.invalid_timestamp,
            detail=f"{spec.time_field}={text_of(raw_time)[:80]!r} is not {expected}",
        )
    instruction = source.instruction(row)
    response = source.response(row)
    record_id = f"{source.name}:{native_id}"
    consumed = source.consumed
    signals = source.signals(row)
    if verdicts is not None and native_id in verdicts:
        signals["verdict"] = verdicts[native_id]
    return {
        "schema": "evidence.v1",
        "id": record_id,
        "stream": source.name,
        "native_id": native_id,
        "task_id": scalar_text(get_path(row, spec.task_field)) if spec.task_field else None,
        "created_at": created_at,
        "instruction": instruction,
        "response": response,
        "file_paths": _file_paths(source, row, instruction, response),
        "validation_steps": extract_validation_steps(response),
        "signals": signals,
        "metadata": {key: value for key, value in row.items() if key not in consumed},
        "provenance": _provenance(source.name, record_id, origin, row, recorded_at),
    }


def _provenance(
    stream: str, record_id: str, origin: Origin, row: dict[str, Any], recorded_at: str
) -> dict[str, Any]:
    """Every Provenance field, spelled out (the evidence line is validated as written)."""
    return {
        "stream": stream,
        "source_file": origin.source_file,
        "line": origin.line,
        "line_end": origin.line_end,
        "pointer": origin.pointer,
        "sig_hash": origin.sig_hash or canonical_hash(row),
        "source_run_id": record_id,
        "recorded_at": recorded_at,
    }


def _file_paths(source: Source, row: dict[str, Any], *texts: str) -> list[str]:
    """The file fields' paths and the texts', sorted: a set, filled a list at a time."""
    paths: set[str] = set()
    for name in source.spec.file_fields:
        value = get_path(row, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.strip():
                paths.add(item.strip())
    for text in texts:
        paths.update(source.text_file_paths(text))
    return sorted(paths)
