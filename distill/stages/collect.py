"""collect: every source → data/evidence/<source>.jsonl, bad units → the skips file."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from distill.config import CollectSettings, Config
from distill.engine import LOCAL, Engine, map_groups
from distill.home import Home
from distill.jsonio import atomic_writer, model_line, validated_line
from distill.limits import LineLimits
from distill.schemas import EvidenceRecord, SkipReason, SkipRecord
from distill.sources import RowOutcome, Source, unprocessable
from distill.sources.inputs import SourceInput, source_inputs
from distill.sources.paths import PATH_HINT
from distill.sources.reading import iter_units, source_verdicts
from distill.sources.rows import unit_payload
from distill.sources.units import Unit
from distill.stage_report import StageReport

Progress = Callable[[str, int], None]


def collect(
    home: Home,
    config: Config,
    *,
    recorded_at: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    engine: Engine = LOCAL,
) -> StageReport:
    """Read every source's files through its format and write one evidence file per source.

    A source reads its ``path`` glob (default ``data/_kb/<name>.jsonl``). Every unit (a line,
    a folded group of lines, a document) becomes evidence or a skip with its reason; blank
    lines are ignored. The files are read and written here; ``engine`` runs the rule that turns
    a unit into evidence (:func:`collect_units`).
    """
    report = StageReport("collect", params={"recorded_at": recorded_at}, dry_run=dry_run)
    for path in home.not_files():
        report.warnings.append(f"{home.relative(path)}: not a file (a folder?), not collected")
    inputs, warnings = source_inputs(home, config)
    report.warnings += warnings
    active = [source_input for source_input in inputs if source_input.files]
    report.inputs = [path for si in active for path in (*si.files, *si.verdict_files)]
    settings = config.collect
    indexes = [source_verdicts(home, si, settings.max_unit_bytes) for si in active]
    work = CollectWork(
        sources=tuple(si.source for si in active),
        verdicts=tuple(None if index is None else index.verdicts for index in indexes),
        recorded_at=recorded_at,
        evidence_limit=LineLimits(settings.max_line_bytes).evidence,
    )
    units = [_units(home, si, settings, recorded_at, number) for number, si in enumerate(active)]
    written: set[Path] = set()
    with contextlib.ExitStack() as stack:
        skip_sink = None if dry_run else stack.enter_context(atomic_writer(home.skips_path)).write
        groups = map_groups(engine, collect_units, work, units, weigh=_unit_bytes)
        for source_input, index, results in zip(active, indexes, groups, strict=True):
            if index is not None:
                report.warnings += index.warnings
            out_path = home.evidence_dir / f"{source_input.name}.jsonl"
            with contextlib.ExitStack() as stream_stack:
                sink = None
                if not dry_run:
                    sink = stream_stack.enter_context(atomic_writer(out_path)).write
                    written.add(out_path)
                _write_source(source_input, results, report, sink, skip_sink, progress)
    if not dry_run:
        _remove_stale(home.evidence_dir, keep=written)
        report.outputs = sorted(written) + [home.skips_path]
    report.extra["streams"] = [source_input.name for source_input in active]
    return report.close()


@dataclass(frozen=True)
class CollectWork:
    """What the unit rule needs besides the unit, per source (in the order of the sources)."""

    sources: tuple[Source, ...]
    verdicts: tuple[Mapping[str, Any] | None, ...]
    recorded_at: str
    evidence_limit: int


class UnitResult(NamedTuple):
    """What one unit became: an evidence line, or (``skip`` set) a line of the skips file."""

    line: bytes
    skip: str | None = None


def _units(
    home: Home, source_input: SourceInput, settings: CollectSettings, recorded_at: str, number: int
) -> Iterator[tuple[int, Unit]]:
    for unit in iter_units(
        home,
        source_input,
        max_line_bytes=settings.max_line_bytes,
        max_unit_bytes=settings.max_unit_bytes,
        recorded_at=recorded_at,
    ):
        yield number, unit


def _unit_bytes(item: tuple[int, Unit]) -> int:
    return item[1].size


def collect_units(work: CollectWork, units: list[tuple[int, Unit]]) -> list[UnitResult]:
    """The rule, on either engine: each (source number, unit) → its evidence line or skip."""
    return [_collect_unit(work, number, unit) for number, unit in units]


def _collect_unit(work: CollectWork, number: int, unit: Unit) -> UnitResult:
    source = work.sources[number]
    payload = unit_payload(
        source, unit, recorded_at=work.recorded_at, verdicts=work.verdicts[number]
    )
    outcome = (
        payload if isinstance(payload, RowOutcome) else _line_or_skip(payload, work.evidence_limit)
    )
    if isinstance(outcome, bytes):
        return UnitResult(outcome)
    assert outcome.skip is not None  # unit_payload returns a payload or a skip
    record = skip_record(source.name, unit, outcome, work.recorded_at)
    return UnitResult(model_line(record), outcome.skip.value)


def _write_source(
    source_input: SourceInput,
    results: Iterator[UnitResult],
    report: StageReport,
    write: Callable[[bytes], object] | None,
    write_skip: Callable[[bytes], object] | None,
    progress: Progress | None,
) -> None:
    units, skipped = 0, Counter[str]()
    for result in results:
        units += 1
        report.records_in += 1
        if result.skip is None:
            report.records_out += 1
            if write is not None:
                write(result.line)
        else:
            skipped[result.skip] += 1
            if write_skip is not None:
                write_skip(result.line)
        if progress is not None and report.records_in % 10_000 == 0:
            progress(source_input.name, report.records_in)
    report.skipped.update(skipped)
    warning = mostly_skipped(source_input, units, skipped)
    if warning:
        report.warnings.append(warning)


def skip_record(stream: str, unit: Unit, outcome: RowOutcome, recorded_at: str) -> SkipRecord:
    assert outcome.skip is not None
    return SkipRecord(
        stream=stream,
        source_file=unit.source_file,
        line=unit.line,
        line_end=unit.line_end,
        reason=outcome.skip,
        detail=outcome.detail,
        raw_sha256=unit.raw_sha256,
        raw_bytes=unit.size,
        recorded_at=recorded_at,
    )


def mostly_skipped(source_input: SourceInput, units: int, skipped: Counter[str]) -> str | None:
    """A warning when most of a source's units were skipped: its settings are likely wrong."""
    total = sum(skipped.values())
    if not total or total * 2 <= units:
        return None
    reason, count = skipped.most_common(1)[0]
    spec = source_input.source.spec
    hints = {
        "invalid_json": 'pretty-printed JSON documents? set format = "mini_swe_agent" (or the '
        "format that wrote them)",
        "line_too_long": "one document per file? set the format that wrote them",
        "missing_id": f"check id_field = {spec.id_field!r} ({PATH_HINT})",
        "missing_timestamp": f"check time_field = {spec.time_field!r} ({PATH_HINT})",
        "invalid_timestamp": f"check time_field = {spec.time_field!r}: ISO-8601 or epoch numbers",
        "filtered_out": "check `where`",
    }
    hint = hints.get(reason)
    return (
        f"[sources.{source_input.name}] (format {spec.format}): {total} of {units} units "
        f"skipped, {count} {reason}" + (f": {hint}" if hint else "")
    )


def _line_or_skip(payload: dict[str, Any], limit: int) -> bytes | RowOutcome:
    """The evidence line, or the skip: a payload that fails evidence.v1 is a skip too, and so
    is one longer than the evidence line limit (score could not read it back)."""
    try:
        line = evidence_line(payload)
    except Exception as err:  # the last resort: nothing one line holds may stop a run
        return unprocessable(err)
    if len(line) - 1 > limit:
        detail = f"its evidence row is {len(line) - 1} bytes > evidence limit {limit}"
        return RowOutcome(skip=SkipReason.line_too_long, detail=detail)
    return line


def evidence_line(payload: dict[str, Any]) -> bytes:
    """An evidence payload, validated against evidence.v1, as one canonical line."""
    return validated_line(EvidenceRecord, payload)


def _remove_stale(folder: Path, keep: set[Path], schema: str = "evidence.v1") -> None:
    """Drop outputs of streams that no longer exist, so the next stage never reads them.

    Only files distill wrote go: a regular file whose first line carries ``schema``. Anything
    else a user keeps in the folder (notes, another tool's JSONL, a symlink) is left alone.
    """
    if not folder.is_dir():
        return
    for path in folder.glob("*.jsonl"):
        if path not in keep and _written_by_distill(path, schema):
            path.unlink()


def _written_by_distill(path: Path, schema: str) -> bool:
    """Whether the file's first line carries ``schema``: streamed, since with sorted keys the
    tag comes after the response, which may be megabytes long."""
    if path.is_symlink() or not path.is_file():
        return False
    tag = b'"schema":"' + schema.encode() + b'"'
    with open(path, "rb") as handle:
        carry = handle.read(1)
        if carry != b"{":
            return False
        while chunk := handle.read(1 << 16):
            window = carry + chunk
            end = window.find(b"\n")
            if tag in (window if end < 0 else window[:end]):
                return True
            if end >= 0:
                return False
            carry = window[-len(tag) :]
    return False
