"""recon: the sources a home reads, how clean, which fields they fill, what will need review."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from distill.config import Config
from distill.home import Home
from distill.jsonio import iter_raw_lines
from distill.schemas import Category, SkipReason
from distill.sources import ScoringContext, Source
from distill.sources.inputs import SourceInput, source_inputs
from distill.sources.reading import iter_units, source_verdicts
from distill.sources.rows import evidence_from_unit

_PROVENANCE_GAPS = {
    SkipReason.missing_id,
    SkipReason.missing_timestamp,
    SkipReason.invalid_timestamp,
}


@dataclass
class StreamRecon:
    stream: str
    path: str
    adapter: bool
    rows: int = 0
    bad_rows: Counter[str] = field(default_factory=Counter)
    field_hits: Counter[str] = field(default_factory=Counter)
    objects: int = 0
    format: str = "jsonl"
    files: int = 1
    needs_review: int = 0
    verdict_source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def missing_provenance(self) -> int:
        return sum(self.bad_rows[reason.value] for reason in _PROVENANCE_GAPS)

    def to_dict(self) -> dict[str, Any]:
        rate = self.missing_provenance / self.rows if self.rows else 0.0
        coverage = {
            name: round(hits / self.objects, 4) if self.objects else 0.0
            for name, hits in sorted(self.field_hits.items())
        }
        return {
            "stream": self.stream,
            "format": self.format,
            "path": self.path,
            "files": self.files,
            "adapter": self.adapter,
            "rows": self.rows,
            "bad_rows": sum(self.bad_rows.values()),
            "bad_rows_by_reason": dict(sorted(self.bad_rows.items())),
            "missing_provenance_rate": round(rate, 4),
            "field_coverage": coverage,
            "needs_review": self.needs_review,
            "verdict_source": self.verdict_source,
            "notes": self.notes,
        }


@dataclass(frozen=True, slots=True)
class _View:
    task_id: str | None
    signals: dict[str, Any]


def recon(home: Home, config: Config) -> list[StreamRecon]:
    """Read every source once, as collect would (streaming), and score it; writes nothing.

    ``rows`` counts units (lines, sessions, documents); ``needs_review`` the records whose rule
    says needs_human_review (cross-stream rules are read without the other streams).
    """
    inputs, _ = source_inputs(home, config)
    results = [_source_recon(home, config, si) for si in inputs if si.files]
    claimed = {path.resolve() for si in inputs for path in si.files}
    for name, path in home.stream_files().items():
        if path.resolve() not in claimed and name not in config.sources:
            results.append(_unread_stream(home, name, path, config.collect.max_line_bytes))
    return results


def _source_recon(home: Home, config: Config, source_input: SourceInput) -> StreamRecon:
    source, settings = source_input.source, config.collect
    spec = source.spec
    shown = spec.path or home.relative(source_input.files[0])
    info = StreamRecon(source.name, shown, True, format=spec.format, files=len(source_input.files))
    index = source_verdicts(home, source_input, settings.max_unit_bytes)
    verdicts = None if index is None else index.verdicts
    for unit in iter_units(
        home,
        source_input,
        max_line_bytes=settings.max_line_bytes,
        max_unit_bytes=settings.max_unit_bytes,
        recorded_at="2000-01-01T00:00:00Z",
    ):
        info.rows += 1
        if unit.row is not None:
            info.objects += 1
            info.field_hits.update(k for k, v in unit.row.items() if v not in (None, "", []))
        outcome = evidence_from_unit(source, unit, recorded_at="", verdicts=verdicts)
        if outcome.payload is None:
            info.bad_rows[(outcome.skip or SkipReason.unprocessable_row).value] += 1
            continue
        view = _View(outcome.payload["task_id"], outcome.payload["signals"])
        if source.score(view, ScoringContext()).category is Category.needs_human_review:
            info.needs_review += 1
    info.verdict_source = _verdict_source(source, None if index is None else len(index.verdicts))
    info.notes = _notes(info, source, [] if index is None else index.warnings)
    return info


def _verdict_source(source: Source, verdict_ids: int | None) -> str | None:
    spec = source.spec
    if spec.verdicts:
        return f"verdicts {spec.verdicts!r} ({verdict_ids or 0} ids)"
    if spec.verdict_field:
        return f"verdict_field {spec.verdict_field!r}"
    if type(source).score is not Source.score:
        return f"the rules of {spec.format if spec.format != 'jsonl' else source.name}"
    return None


def _notes(info: StreamRecon, source: Source, warnings: list[str]) -> list[str]:
    notes = list(warnings)
    records = info.rows - sum(info.bad_rows.values())
    if info.needs_review and not (source.spec.verdicts or source.spec.verdict_field):
        notes.append(
            f"no verdict source: {info.needs_review} records will need review — add "
            f'`verdicts = "<glob>"` (or verdict_field) to [sources.{info.stream}]'
        )
    elif info.needs_review:
        notes.append(f"{info.needs_review} of {records} records will need review")
    return notes


def _unread_stream(home: Home, name: str, path: Any, limit: int) -> StreamRecon:
    """A ``data/_kb`` stream no source reads: its rows and fields, nothing more."""
    info = StreamRecon(name, home.relative(path), adapter=False)
    for raw in iter_raw_lines(path, limit):
        if raw.data is not None and not raw.data.strip():
            continue
        info.rows += 1
        if raw.data is None:
            continue
        try:
            row = orjson.loads(raw.data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict):
            info.objects += 1
            info.field_hits.update(k for k, v in row.items() if v not in (None, "", []))
    return info
