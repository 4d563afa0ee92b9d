"""collect: every source stream → data/evidence/<stream>.jsonl, bad lines → the skips file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.config import Config
from distill.home import Home
from distill.jsonio import atomic_writer, iter_raw_lines, model_line, validated_line
from distill.limits import LineLimits
from distill.schemas import EvidenceRecord, SkipReason, SkipRecord
from distill.sources import RowOutcome, Source, evidence_from_line, unprocessable
from distill.stages.report import StageReport

Progress = Callable[[str, int], None]


def collect(
    home: Home,
    config: Config,
    *,
    recorded_at: str,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> StageReport:
    """Read each stream under ``data/_kb/`` and write one evidence file per stream.

    Blank lines are ignored; every other line becomes evidence or a skip with its reason.
    """
    report = StageReport("collect", params={"recorded_at": recorded_at}, dry_run=dry_run)
    max_line = config.collect.max_line_bytes
    streams = home.stream_files()
    for path in home.not_files():
        report.warnings.append(f"{home.relative(path)}: not a file (a folder?), not collected")
    for name, path in streams.items():
        if name not in config.sources:
            report.warnings.append(
                f"{home.relative(path)}: no adapter for stream {name!r}, not collected "
                f"(declare [sources.{name}] in distill.toml)"
            )
    known = {name: path for name, path in streams.items() if name in config.sources}
    report.inputs = list(known.values())
    written: set[Path] = set()
    with contextlib.ExitStack() as stack:
        skip_sink = None if dry_run else stack.enter_context(atomic_writer(home.skips_path)).write
        for name, path in known.items():
            out_path = home.evidence_dir / f"{name}.jsonl"
            with contextlib.ExitStack() as stream_stack:
                sink = None
                if not dry_run:
                    sink = stream_stack.enter_context(atomic_writer(out_path)).write
                    written.add(out_path)
                _collect_stream(
                    home,
                    config.sources[name],
                    path,
                    recorded_at,
                    max_line,
                    report,
                    write=sink,
                    write_skip=skip_sink,
                    progress=progress,
                )
    if not dry_run:
        _remove_stale(home.evidence_dir, keep=written)
        report.outputs = sorted(written) + [home.skips_path]
    report.extra["streams"] = sorted(known)
    return report.close()


def _collect_stream(
    home: Home,
    source: Source,
    path: Path,
    recorded_at: str,
    max_line: int,
    report: StageReport,
    *,
    write: Callable[[bytes], object] | None,
    write_skip: Callable[[bytes], object] | None,
    progress: Progress | None,
) -> None:
    source_file = home.relative(path)
    evidence_limit = LineLimits(max_line).evidence
    for raw in iter_raw_lines(path, max_line):
        if raw.data is not None and not raw.data.strip():
            continue
        report.records_in += 1
        outcome = evidence_from_line(
            source, raw, source_file=source_file, recorded_at=recorded_at, max_line_bytes=max_line
        )
        line = _line_or_skip(outcome, evidence_limit)
        if isinstance(line, bytes):
            report.records_out += 1
            if write is not None:
                write(line)
        else:
            outcome = line
            assert outcome.skip is not None  # evidence_from_line returns one or the other
            report.skipped[outcome.skip.value] += 1
            skip = SkipRecord(
                stream=source.name,
                source_file=source_file,
                line=raw.line_no,
                reason=outcome.skip,
                detail=outcome.detail,
                raw_sha256=raw.sha256,
                raw_bytes=raw.size,
                recorded_at=recorded_at,
            )
            if write_skip is not None:
                write_skip(model_line(skip))
        if progress is not None and report.records_in % 10_000 == 0:
            progress(source.name, report.records_in)


def _line_or_skip(outcome: RowOutcome, limit: int) -> bytes | RowOutcome:
    """The evidence line, or the skip: a payload that fails evidence.v1 is a skip too, and so
    is one longer than the evidence line limit (score could not read it back)."""
    if outcome.payload is None:
        return outcome
    try:
        line = evidence_line(outcome.payload)
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

