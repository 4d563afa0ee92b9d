"""What every exporter shares: reading scored runs with the pre-checks, and the quarantine sink.

The pre-checks run in a fixed order and the first that fails names the reason:
schema_violation → missing_source_run_id → missing_provenance → duplicate_id → empty_content.
The exporter's own category policy comes next, then the hallucinated-path check
(:func:`path_refusal`), so a rejected record is quarantined for what it is, never hidden
behind a path it cites.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from pydantic import ValidationError

from distill.config import Config
from distill.errors import InputMissingError, format_validation_error
from distill.home import Home
from distill.jsonio import RawLine, iter_json_objects, iter_raw_lines, model_line
from distill.limits import LineLimits
from distill.repos import DEFAULT_REPO_FIELD, RepoRoots
from distill.schemas import (
    Category,
    ExportName,
    PairRef,
    QuarantineReason,
    QuarantineRecord,
    ScoredRun,
)
from distill.stage_report import StageReport

_SHA256 = frozenset("0123456789abcdef")
Refusal = tuple[QuarantineReason, str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedCandidate:
    """A scored-run line that passed the pre-checks: a record the export's policy judges next."""

    record: ScoredRun
    file_index: int
    offset: int

    @property
    def record_id(self) -> str:
        return self.record.id

    @property
    def stream(self) -> str:
        return self.record.stream

    @property
    def line(self) -> int:
        return self.record.provenance.line

    @property
    def sig_hash(self) -> str:
        return self.record.provenance.sig_hash

    @property
    def category(self) -> Category:
        return self.record.category


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusedCandidate:
    """A scored-run line a pre-check refused, with what could be read of it for the quarantine."""

    reason: QuarantineReason
    detail: str
    record_id: str | None
    stream: str | None
    line: int  # the source line (provenance.line), or the scored-run line when unknown
    sig_hash: str | None
    category: Category | None
    file_index: int
    offset: int


Candidate = AcceptedCandidate | RefusedCandidate
Check = Callable[[ScoredRun], Refusal]


def id_hash(text: str) -> int:
    """A 63-bit key for compact per-row bookkeeping (numpy arrays, not Python sets)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


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


def path_refusal(roots: RepoRoots | None, record: ScoredRun) -> Refusal:
    """hallucinated_file_path when ``record`` cites a path its checkout does not hold."""
    if roots is None or not record.file_paths:
        return None
    checkout = roots.checkout(record)
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


def read_candidates(files: list[Path], limits: LineLimits, home: Home) -> Iterator[Candidate]:
    """Every non-blank line of the scored-run files, in file then line order, pre-checked.

    A line longer than the scored-run limit is one schema_violation, never the end of the run.
    """
    losers = duplicate_losers(files, limits)
    for file_index, path in enumerate(files):
        for raw in iter_raw_lines(path, limits.scored):
            if raw.data is not None and not raw.data.strip():
                continue
            if raw.data is None:
                yield _oversized(raw, file_index, home.relative(path), limits)
                continue
            yield _check(raw.data, raw.line_no, file_index, raw.offset, losers)


def _oversized(
    raw: RawLine, file_index: int, scored_file: str, limits: LineLimits
) -> RefusedCandidate:
    # Too long to read, so its provenance is out of reach: the scored-run line is named instead.
    detail = (
        f"line {raw.line_no} of {scored_file} is {raw.size} bytes, over {limits.describe('scored')}"
    )
    return RefusedCandidate(
        reason=QuarantineReason.schema_violation,
        detail=detail,
        record_id=None,
        stream=None,
        line=raw.line_no,
        sig_hash=None,
        category=None,
        file_index=file_index,
        offset=raw.offset,
    )


_BUCKETS = 1 << 24  # 16 MiB of one-byte counters, whatever the input size


def duplicate_losers(files: list[Path], limits: LineLimits) -> set[tuple[int, int]]:
    """(file index, line) of every valid record whose id appeared earlier (by time, then line).

    Memory stays flat as streams grow: a first pass counts ids into a fixed array of buckets,
    and only lines whose bucket was hit twice (true duplicates plus a few collisions) are
    validated and ranked in the second pass.
    """
    buckets = bytearray(_BUCKETS)
    for record_id, _, _, _ in _ids(files, limits.scored):
        slot = id_hash(record_id) % _BUCKETS
        if buckets[slot] < 2:
            buckets[slot] += 1
    ranked: list[tuple[str, int, int, int]] = []
    for record_id, file_index, line, data in _ids(files, limits.scored):
        if buckets[id_hash(record_id) % _BUCKETS] < 2:
            continue
        checked = _check(data, line, file_index, 0, set())
        if isinstance(checked, RefusedCandidate):
            continue  # an invalid copy never evicts a valid one
        record = checked.record
        moment = int(datetime.fromisoformat(record.created_at).timestamp() * 1_000_000)
        ranked.append((record.id, moment, file_index, line))
    ranked.sort()
    losers = set()
    for previous, current in zip(ranked, ranked[1:], strict=False):
        if previous[0] == current[0]:
            losers.add((current[2], current[3]))
    return losers


def _ids(files: list[Path], limit: int) -> Iterator[tuple[str, int, int, bytes]]:
    for file_index, path in enumerate(files):
        for raw, row in iter_json_objects(path, limit):
            record_id = row.get("id")
            if isinstance(record_id, str) and record_id and raw.data is not None:
                yield record_id, file_index, raw.line_no, raw.data


def _check(
    data: bytes, scored_line: int, file_index: int, offset: int, losers: set[tuple[int, int]]
) -> Candidate:
    def refuse(
        reason: QuarantineReason, detail: str, category: Category | None = None
    ) -> RefusedCandidate:
        return RefusedCandidate(
            reason=reason,
            detail=detail,
            record_id=record_id,
            stream=stream,
            line=line,
            sig_hash=sig,
            category=category,
            file_index=file_index,
            offset=offset,
        )

    record_id: str | None = None
    stream: str | None = None
    sig: str | None = None
    line = scored_line  # until the record says which source line it came from
    record = _valid_record(data)
    if record is not None:  # the common case: one parse, one validation
        record_id, stream, sig = record.id, record.stream, record.provenance.sig_hash
        line = record.provenance.line
    else:  # classify the failure in the documented order
        try:
            row = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            return refuse(QuarantineReason.schema_violation, f"not JSON: {err}"[:200])
        if not isinstance(row, dict):
            return refuse(QuarantineReason.schema_violation, "not a JSON object")
        record_id = _nonempty_str(row.get("id"))
        stream = _nonempty_str(row.get("stream"))
        provenance = row.get("provenance")
        if isinstance(provenance, dict):
            sig = _nonempty_str(provenance.get("sig_hash"))
            source_line = provenance.get("line")
            line = source_line if isinstance(source_line, int) and source_line > 0 else line
        if record_id is None:
            return refuse(QuarantineReason.missing_source_run_id, "record has no id")
        if not _provenance_complete(provenance):
            return refuse(QuarantineReason.missing_provenance, "provenance incomplete")
        try:
            record = ScoredRun.model_validate(row)
        except ValidationError as err:
            return refuse(QuarantineReason.schema_violation, format_validation_error(err)[:300])
    origin = record.provenance  # the schema checks sig_hash and line; emptiness is ours to refuse
    if not (origin.stream and origin.source_file and origin.source_run_id):
        return refuse(QuarantineReason.missing_provenance, "provenance incomplete")
    category = record.category
    if (file_index, scored_line) in losers:
        return refuse(QuarantineReason.duplicate_id, f"{record_id} seen earlier", category)
    if not record.response.strip() or not record.instruction.strip():
        which = "response" if not record.response.strip() else "instruction"
        return refuse(QuarantineReason.empty_content, f"empty {which}", category)
    return AcceptedCandidate(record=record, file_index=file_index, offset=offset)


def _valid_record(data: bytes) -> ScoredRun | None:
    try:
        return ScoredRun.model_validate_json(data)
    except ValidationError:
        return None


def _nonempty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _provenance_complete(provenance: object) -> bool:
    if not isinstance(provenance, dict):
        return False
    sig = provenance.get("sig_hash")
    if not (isinstance(sig, str) and len(sig) == 64 and set(sig) <= _SHA256):
        return False
    return all(provenance.get(key) for key in ("stream", "source_file", "line", "source_run_id"))


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

    def record(self, candidate: Candidate, reason: QuarantineReason, detail: str) -> None:
        self.records[reason.value] += 1
        self._emit(
            QuarantineRecord(
                export=self.export,
                reason=reason,
                detail=detail,
                record_id=candidate.record_id,
                stream=candidate.stream,
                line=candidate.line,
                sig_hash=candidate.sig_hash,
                category=candidate.category,
                recorded_at=self.recorded_at,
            )
        )

    def pair(
        self, chosen: ScoredRun, rejected: ScoredRun, reason: QuarantineReason, detail: str
    ) -> None:
        self.pairs[reason.value] += 1
        self._emit(
            QuarantineRecord(
                export=self.export,
                reason=reason,
                detail=detail,
                record_id=chosen.id,
                stream=chosen.stream,
                line=chosen.provenance.line,
                sig_hash=chosen.provenance.sig_hash,
                category=chosen.category,
                pair=PairRef(chosen_id=chosen.id, rejected_id=rejected.id),
                recorded_at=self.recorded_at,
            )
        )

    def _emit(self, entry: QuarantineRecord) -> None:
        if self._write is not None:
            self._write(model_line(entry))
