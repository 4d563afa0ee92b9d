"""What every exporter shares: the firewall a scored-run line passes, and the quarantine sink.

The pre-checks (:mod:`distill.stages.prechecks`) run first, in a fixed order:
schema_violation → missing_source_run_id → missing_provenance → duplicate_id → empty_content.
The exporter's own category policy comes next, then the hallucinated-path check
(:class:`PathCheck`), so a rejected record is quarantined for what it is, never hidden
behind a path it cites. :class:`Firewall` holds one export's checks; whichever engine judges
the lines runs it (:mod:`distill.engine`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from distill.config import Config
from distill.errors import InputMissingError
from distill.home import Home
from distill.jsonio import RawLine, iter_raw_lines, validated_line
from distill.limits import LineLimits
from distill.repos import DEFAULT_REPO_FIELD, RepoRoots
from distill.schemas import Category, ExportName, QuarantineReason, QuarantineRecord
from distill.schemas.fast import ScoredRow
from distill.stage_report import StageReport
from distill.stages.prechecks import AcceptedCandidate as AcceptedCandidate  # the exporters'
from distill.stages.prechecks import (
    Candidate,
    RefusedCandidate,
    check_line,
    duplicate_losers,
    oversized,
)
from distill.stages.prechecks import id_hash as id_hash

Refusal = tuple[QuarantineReason, str] | None
Check = Callable[[ScoredRow], Refusal]


def repo_fields(config: Config) -> dict[str, str]:
    """Per stream, the field naming a row's repository (the per-source ``repo_field``).

    ``[sources.<name>] repo_field`` names it; a source without one uses ``repo``
    (:data:`DEFAULT_REPO_FIELD`).
    """
    fields = {}
    for name, source in config.sources.items():
        field = source.spec.repo_field
        if field and field != DEFAULT_REPO_FIELD:
            fields[name] = field
    return fields


def repo_roots(repo_root: Path | None, config: Config) -> RepoRoots | None:
    """The hallucinated-path check for ``--repo-root`` (None: the check is skipped)."""
    return RepoRoots(repo_root, repo_fields(config)) if repo_root else None


class PathCheck:
    """The hallucinated-path check of one row: quarantines it as hallucinated_file_path when
    it cites a path its checkout does not hold. ``unchecked`` names the repository that had no
    checkout under ``--repo-root`` (the row was not checked), for :func:`path_check_notes`."""

    def __init__(self, roots: RepoRoots | None) -> None:
        self.roots = roots
        self.unchecked: str | None = None

    def __call__(self, record: ScoredRow) -> Refusal:
        roots = self.roots
        if roots is None or not record.file_paths:
            return None
        checkout, self.unchecked = roots.locate(record)
        if checkout is None:
            return None  # no checkout of its repository: counted, reported by path_check_notes
        missing = roots.missing_in(checkout, record.file_paths)
        if not missing:
            return None
        detail = f"not in the {roots.describe(checkout)}: {', '.join(missing[:5])}"
        return QuarantineReason.hallucinated_file_path, detail


def admit(candidate: Candidate, sink: QuarantineSink, *checks: Check) -> AcceptedCandidate | None:
    """``candidate`` when no check refuses its record; else None, and the refusal goes to
    ``sink``. The checks run in the order given, after the pre-checks: the first refusal
    names the reason."""
    if isinstance(candidate, RefusedCandidate):
        sink.record(candidate, candidate.reason, candidate.detail)
        return None
    for check in checks:
        refusal = check(candidate.record)
        if refusal is not None:
            sink.record(candidate, *refusal)
            return None
    return candidate


def path_check_notes(report: StageReport, roots: RepoRoots | None) -> None:
    """The check's state, and a warning per repository whose records were not checked."""
    if roots is None:
        report.checks["hallucinated_file_path"] = "skipped (no --repo-root)"
        return
    report.checks["hallucinated_file_path"] = "enabled"
    for repo, count in sorted(roots.no_checkout.items()):
        report.warnings.append(
            f"no checkout for repo {repo} under {roots.root}: path check skipped for {count} "
            "row(s) citing paths"
        )
    if roots.no_checkout:
        report.extra["path_check_skipped"] = dict(sorted(roots.no_checkout.items()))


def scored_files(home: Home) -> list[Path]:
    folder = home.scored_dir
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise InputMissingError(f"no scored runs under {folder}", hint="run `distill score` first")
    return files


def candidate_lines(files: list[Path], limits: LineLimits) -> Iterator[tuple[int, RawLine]]:
    """(file index, line) of every non-blank line of the scored-run files, in file then line
    order: what :meth:`Firewall.judge` is given, one line at a time."""
    for file_index, path in enumerate(files):
        for raw in iter_raw_lines(path, limits.scored, digest=False):
            data = raw.data
            if data is not None and (not data or data.isspace()):  # blank: no copy, as strip()
                continue
            yield file_index, raw


class Judged(msgspec.Struct, frozen=True, gc=False):
    """What one export made of one scored-run line: a ``line`` for the dataset (``category``
    set), a row ``eligible`` to pair with its ``view`` (the preference export), or a
    ``quarantine`` line with its
    ``reason``. ``unchecked``: the repository whose checkout was missing (see PathCheck).
    A frozen msgspec struct: one is made per line, ~20 times faster than a frozen dataclass."""

    line: bytes | None = None
    category: str | None = None
    eligible: tuple[int, ...] | None = None
    view: bytes | None = None
    quarantine: bytes | None = None
    reason: str | None = None
    unchecked: str | None = None


@dataclass(frozen=True)
class Firewall:
    """One export's firewall over scored-run lines: the pre-checks, then ``before`` (the
    export's category policy), the path check, then ``after``; the first refusal names the
    reason. Built once on the driver (:func:`firewall_for`) and shipped to whichever engine
    judges the lines, so both engines run this one implementation."""

    export: ExportName
    recorded_at: str
    names: tuple[str, ...]  # the scored-run files as the home names them
    limits: LineLimits
    losers: frozenset[tuple[int, int]]  # (file index, line) of later copies of an id
    roots: RepoRoots | None
    before: tuple[Check, ...]
    after: tuple[Check, ...] = ()

    def judge(self, file_index: int, raw: RawLine) -> tuple[AcceptedCandidate | None, Judged]:
        """The line's candidate when every check admits it, and the line's judgement."""
        if raw.data is None:
            candidate: Candidate = oversized(raw, file_index, self.names[file_index], self.limits)
        else:
            candidate = check_line(raw.data, raw.line_no, file_index, raw.offset, self.losers)
        unchecked = None
        if isinstance(candidate, RefusedCandidate):
            reason, detail = candidate.reason, candidate.detail
        else:
            refusal, unchecked = self.policy(candidate.record)
            if refusal is None:
                return candidate, Judged(unchecked=unchecked)
            reason, detail = refusal
        line = quarantine_line(self.export, self.recorded_at, candidate, reason, detail)
        return None, Judged(quarantine=line, reason=str(reason), unchecked=unchecked)

    def policy(self, record: ScoredRow) -> tuple[Refusal, str | None]:
        """``before``, the path check, ``after`` on a record the pre-checks passed: the first
        refusal, and the repository left unchecked (no checkout of it)."""
        if self.roots is None:  # no path check: one pass over the export's own checks
            return _first_refusal(record, self.before + self.after), None
        refusal = _first_refusal(record, self.before)
        if refusal is not None:
            return refusal, None
        path = PathCheck(self.roots)
        refusal, unchecked = path(record), path.unchecked
        if refusal is not None:
            return refusal, unchecked
        return _first_refusal(record, self.after), unchecked


def _first_refusal(record: ScoredRow, checks: tuple[Check, ...]) -> Refusal:
    for check in checks:
        refusal = check(record)
        if refusal is not None:
            return refusal
    return None


class Quarantined(Protocol):
    """What a quarantine line names of a record: a candidate, or what pairing read of one."""

    @property
    def record_id(self) -> str | None: ...
    @property
    def stream(self) -> str | None: ...
    @property
    def line(self) -> int: ...
    @property
    def sig_hash(self) -> str | None: ...
    @property
    def category(self) -> Category | None: ...


def quarantine_line(
    export: ExportName,
    recorded_at: str,
    candidate: Quarantined,
    reason: QuarantineReason,
    detail: str,
    pair: tuple[str, str] | None = None,
) -> bytes:
    """One quarantine.v1 line for a refused record (or, with ``pair``, a refused pair)."""
    category = candidate.category  # str() of a StrEnum is its value, without enum's descriptor
    payload = {
        "schema": "quarantine.v1",
        "export": export,
        "reason": str(reason),
        "detail": detail,
        "record_id": candidate.record_id,
        "stream": candidate.stream,
        "line": candidate.line,
        "sig_hash": candidate.sig_hash,
        "category": None if category is None else str(category),
        "pair": None if pair is None else {"chosen_id": pair[0], "rejected_id": pair[1]},
        "recorded_at": recorded_at,
    }
    return validated_line(QuarantineRecord, payload)


def firewall_for(
    export: ExportName,
    home: Home,
    files: list[Path],
    roots: RepoRoots | None,
    *,
    recorded_at: str,
    limits: LineLimits,
    before: tuple[Check, ...],
    after: tuple[Check, ...] = (),
) -> Firewall:
    """The firewall of ``export`` over ``files`` (a first pass over them finds duplicate ids)."""
    return Firewall(
        export,
        recorded_at,
        tuple(home.relative(path) for path in files),
        limits,
        frozenset(duplicate_losers(files, limits)),
        roots,
        before,
        after,
    )


class QuarantineSink:
    """Counts and writes quarantine entries for one export."""

    def __init__(
        self, export: ExportName, recorded_at: str, write: Callable[[bytes], object] | None
    ):
        self.export: ExportName = export
        self.recorded_at = recorded_at
        self._write = write
        self.records: Counter[str] = Counter()
        self.pairs: Counter[str] = Counter()

    def record(self, candidate: Quarantined, reason: QuarantineReason, detail: str) -> None:
        self.records[str(reason)] += 1
        self._emit(quarantine_line(self.export, self.recorded_at, candidate, reason, detail))

    def pair(
        self, chosen: Quarantined, rejected: Quarantined, reason: QuarantineReason, detail: str
    ) -> None:
        """A refused pair, named by its chosen side (both sides have an id)."""
        self.pairs[str(reason)] += 1
        pair = (str(chosen.record_id), str(rejected.record_id))
        self._emit(quarantine_line(self.export, self.recorded_at, chosen, reason, detail, pair))

    def take(self, judged: Judged, roots: RepoRoots | None) -> None:
        """Count and write the quarantine line of a judged row (an engine judged it), and the
        repository it left unchecked."""
        if judged.unchecked is not None and roots is not None:
            roots.no_checkout[judged.unchecked] += 1
        if judged.reason is not None and judged.quarantine is not None:
            self.records[judged.reason] += 1
            self._emit(judged.quarantine)

    def absorb(self, lines: list[bytes], records: Counter[str], pairs: Counter[str]) -> None:
        """Lines another sink captured, with what it counted."""
        self.records.update(records)
        self.pairs.update(pairs)
        if self._write is not None:
            for line in lines:
                self._write(line)

    def _emit(self, line: bytes) -> None:
        if self._write is not None:
            self._write(line)
