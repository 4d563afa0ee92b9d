"""export preference: same-task chosen/rejected pairs in TRL's explicit-prompt format.

Per task: accepted × rejected first, then accepted × partially_accepted, at most five pairs;
never a record with itself (same id or same raw row), never identical chosen and rejected text.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from distill.config import Config, load_config
from distill.engine import LOCAL, Engine
from distill.home import Home
from distill.jsonio import RawLine, atomic_writer
from distill.limits import LineLimits
from distill.schemas import Category, PreferenceSample, QuarantineReason
from distill.schemas.fast import PreferenceRow, ScoredRow
from distill.stage_report import StageReport
from distill.stages.export_datasets import reread_check, sample_line
from distill.stages.firewall import (
    AcceptedCandidate,
    Firewall,
    Judged,
    QuarantineSink,
    Refusal,
    candidate_lines,
    firewall_for,
    id_hash,
    path_check_notes,
    repo_roots,
    scored_files,
)
from distill.stages.reread import AtMost

MAX_PAIRS_PER_TASK = 5
PER_TASK = AtMost("task_id", MAX_PAIRS_PER_TASK, "task", "pairs")  # what the re-read holds to
_CODES = {Category.accepted: 2, Category.partially_accepted: 1, Category.rejected: 0}


def export_preference(
    home: Home,
    *,
    recorded_at: str,
    repo_root: Path | None = None,
    dry_run: bool = False,
    config: Config | None = None,
    engine: Engine = LOCAL,
) -> StageReport:
    """Write chosen/rejected pairs; every record not in a pair is quarantined with its reason.

    ``config`` (default: the home's distill.toml) sets the line limits and the repo fields.
    """
    report = StageReport(
        "export_preference",
        dry_run=dry_run,
        params={
            "recorded_at": recorded_at,
            "repo_root": str(repo_root) if repo_root else None,
            "max_pairs_per_task": MAX_PAIRS_PER_TASK,
        },
    )
    files = scored_files(home)
    report.inputs = files
    config = config or load_config(home.config_path)
    limits, roots = LineLimits.of(config), repo_roots(repo_root, config)
    out_path, quarantine_path = home.export_path("preference"), home.quarantine_path("preference")
    firewall = firewall_for(
        "preference",
        home,
        files,
        roots,
        recorded_at=recorded_at,
        limits=limits,
        before=(_category_policy,),  # then the path check, then:
        after=(_unpairable,),
    )
    with contextlib.ExitStack() as stack:
        write = quarantine = None
        if not dry_run:
            verify = reread_check(
                PreferenceSample, _pair_problem, "preference", limits.export, at_most=PER_TASK
            )
            # entered first, so it exits last: a refused export aborts its quarantine too
            quarantine = stack.enter_context(atomic_writer(quarantine_path)).write
            write = stack.enter_context(atomic_writer(out_path, verify=verify)).write
        sink = QuarantineSink("preference", recorded_at, quarantine)
        eligible = stack.enter_context(_Eligible())
        for judged in engine.map(eligible_rows, firewall, candidate_lines(files, limits)):
            report.records_in += 1
            sink.take(judged, roots)
            if judged.eligible is not None and judged.view is not None:
                eligible.add(judged.eligible, judged.view)
        tasks = eligible.groups()
        kinds: Counter[str] = Counter()
        for task in engine.map(pair_tasks, recorded_at, tasks):
            kinds.update(task.kinds)
            for line in task.samples:
                if write is not None:
                    write(line)
            report.records_out += task.used
            sink.absorb(task.quarantine, task.records, task.pairs)
    report.quarantined = sink.records
    report.out_by_category = kinds
    report.extra["pairs"] = sum(kinds.values())
    report.extra["pairs_refused"] = dict(sorted(sink.pairs.items()))
    path_check_notes(report, roots)
    report.checks["reread"] = "skipped (dry run)" if dry_run else "passed"
    if not dry_run:
        report.outputs = [out_path, quarantine_path]
    return report.close()


def eligible_rows(firewall: Firewall, lines: list[tuple[int, RawLine]]) -> list[Judged]:
    """The firewall, on either engine: each scored-run line → the row that may pair (task,
    category, time and where the line is, and what pairing reads of it: :class:`PairView`)
    or its quarantine line."""
    judged = []
    for file_index, raw in lines:
        admitted, verdict = firewall.judge(file_index, raw)
        if admitted is not None:
            eligible, view = _eligible_row(admitted), _encode_view(_view(admitted.record))
            verdict = Judged(eligible=eligible, view=view, unchecked=verdict.unchecked)
        judged.append(verdict)
    return judged


class PairView(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What pairing reads of an eligible record, and what its quarantine line names: taken
    from the record the firewall decoded and spilled beside the pairing keys (msgpack), so a
    scored run is decoded once, not read back and decoded again per task."""

    record_id: str
    task_id: str
    category: Category
    instruction: str  # the prompt, read of the chosen side only: "" for the other categories
    response: str
    stream: str
    sig_hash: str
    source_file: str
    line: int


_encode_view = msgspec.msgpack.Encoder().encode
_decode_view = msgspec.msgpack.Decoder(PairView).decode


def _view(record: ScoredRow) -> PairView:
    origin = record.provenance
    assert record.task_id  # _unpairable refused the records without one
    return PairView(
        record_id=record.id,
        task_id=record.task_id,
        category=record.category,
        instruction=record.instruction if record.category is Category.accepted else "",
        response=record.response,
        stream=record.stream,
        sig_hash=origin.sig_hash,
        source_file=origin.source_file,
        line=origin.line,
    )


def _category_policy(record: ScoredRow) -> Refusal:
    if record.category is Category.needs_human_review:
        return QuarantineReason.category_disallowed, "needs_human_review never enters a pair"
    return None


def _unpairable(record: ScoredRow) -> Refusal:
    """After the category and path checks: a record with no task cannot pair."""
    if not record.task_id:
        return QuarantineReason.invalid_preference_pairing, "no task_id to pair within"
    return None


_ROW = struct.Struct("=7q")  # native order, as numpy reads the partitions back


class _Eligible:
    """The records that may pair: their keys (56 bytes each: :func:`_eligible_row`, then where
    the view is) in 64 partitions by task hash, and their views, spilled to two unnamed temp
    files.

    Each partition's keys gather in a buffer written out as one chunk of the keys file when
    full (64 KiB), its chunks listed: grouping by task then needs one partition's keys in
    memory at a time and a task's views, so memory stays flat as the streams grow, and the
    spill costs two files, not a file per partition (creating and removing one costs as much
    CPU as pairing a hundred rows).
    """

    PARTITIONS = 64
    CHUNK = 1 << 16

    def __init__(self) -> None:
        self._keys = tempfile.TemporaryFile(prefix="distill-pairs-")  # noqa: SIM115
        self._views = tempfile.TemporaryFile(buffering=1 << 17, prefix="distill-pairs-")  # noqa: SIM115
        self._buffers = [bytearray() for _ in range(self.PARTITIONS)]
        self._chunks: list[list[tuple[int, int]]] = [[] for _ in range(self.PARTITIONS)]
        self._keys_size = self._views_size = 0

    def __enter__(self) -> _Eligible:
        return self

    def __exit__(self, *_: object) -> None:
        self._keys.close()
        self._views.close()

    def add(self, row: tuple[int, ...], view: bytes) -> None:
        """One row :func:`_eligible_row` made, and the encoded :class:`PairView` of its record."""
        part = row[0] % self.PARTITIONS
        buffer = self._buffers[part]
        buffer += _ROW.pack(*row, self._views_size, len(view))
        if len(buffer) >= self.CHUNK:
            self._spill(part)
        self._views.write(view)
        self._views_size += len(view)

    def _spill(self, part: int) -> None:
        buffer = self._buffers[part]
        self._keys.write(buffer)
        self._chunks[part].append((self._keys_size, len(buffer)))
        self._keys_size += len(buffer)
        buffer.clear()

    def groups(self) -> Iterator[TaskLines]:
        """Per task, (category code, encoded view) rows in time, file, line order."""
        for part in range(self.PARTITIONS):
            self._spill(part)
        self._keys.flush()
        self._views.flush()
        read, keys, views = os.pread, self._keys.fileno(), self._views.fileno()
        for chunks in self._chunks:
            data = b"".join(read(keys, size, at) for at, size in chunks if size)
            if not data:
                continue
            task, code, time, file, line, at, size = np.frombuffer(data, np.int64).reshape(-1, 7).T
            order = np.lexsort((line, file, time, task))
            bounds = np.flatnonzero(np.diff(task[order])) + 1
            codes, ats, sizes = code.tolist(), at.tolist(), size.tolist()
            for group in np.split(order, bounds):
                yield [(codes[i], read(views, sizes[i], ats[i])) for i in group.tolist()]


def _eligible_row(candidate: AcceptedCandidate) -> tuple[int, ...]:
    """(task, category code, time in µs, file, line): what pairing sorts by."""
    record = candidate.record
    assert record.task_id  # _unpairable refused the records without one
    moment = int(datetime.fromisoformat(record.created_at).timestamp() * 1e6)
    return (
        id_hash(record.task_id),
        _CODES[record.category],
        moment,
        candidate.file_index,
        candidate.line,
    )


TaskLines = list[tuple[int, bytes]]


class TaskPairs(msgspec.Struct, frozen=True):
    """What one task's records became: pair lines, and quarantine lines with their counts."""

    samples: list[bytes]
    kinds: list[str]
    used: int
    quarantine: list[bytes]
    records: Counter[str]
    pairs: Counter[str]


def pair_tasks(recorded_at: str, tasks: list[TaskLines]) -> list[TaskPairs]:
    """The pairing rule, on either engine: each task's eligible rows → its pairs."""
    return [_pair_task(recorded_at, rows) for rows in tasks]


def _pair_task(recorded_at: str, rows: TaskLines) -> TaskPairs:
    records = [_decode_view(view) for _, view in rows]
    captured: list[bytes] = []
    sink = QuarantineSink("preference", recorded_at, captured.append)
    by_code: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for index, (code, _) in enumerate(rows):
        by_code[code].append(index)
    pairs: list[tuple[PairView, PairView]] = []
    for losing_code in (0, 1):
        for chosen_index in by_code[2]:
            for rejected_index in by_code[losing_code]:
                if len(pairs) == MAX_PAIRS_PER_TASK:
                    break
                chosen, rejected = records[chosen_index], records[rejected_index]
                problem = _pairing_problem(chosen, rejected)
                if problem is None:
                    pairs.append((chosen, rejected))
                else:
                    sink.pair(chosen, rejected, *problem)
    samples = [
        sample_line(PreferenceSample, _sample(chosen, rejected, recorded_at), "preference")
        for chosen, rejected in pairs
    ]
    used = {record.record_id for pair in pairs for record in pair}
    for record in records:
        if record.record_id not in used:
            reason = _unpaired_reason(record, by_code, len(pairs))
            sink.record(record, QuarantineReason.invalid_preference_pairing, reason)
    kinds = [f"accepted>{rejected.category}" for _, rejected in pairs]
    return TaskPairs(
        samples=samples,
        kinds=kinds,
        used=len(used),
        quarantine=captured,
        records=sink.records,
        pairs=sink.pairs,
    )


def _pairing_problem(chosen: PairView, rejected: PairView) -> tuple[QuarantineReason, str] | None:
    if chosen.record_id == rejected.record_id or chosen.sig_hash == rejected.sig_hash:
        return QuarantineReason.self_pairing, "chosen and rejected are the same evidence"
    if chosen.response.strip() == rejected.response.strip():
        return QuarantineReason.invalid_preference_pairing, "identical chosen and rejected text"
    return None


def _unpaired_reason(record: PairView, by_code: dict[int, list[int]], pairs: int) -> str:
    if pairs == MAX_PAIRS_PER_TASK:
        return f"task {record.task_id} already has {MAX_PAIRS_PER_TASK} pairs"
    if not by_code[2]:
        return f"task {record.task_id} has no accepted record to pair against"
    if record.category is Category.accepted and not (by_code[0] or by_code[1]):
        return f"task {record.task_id} has nothing rejected or partial to pair against"
    return f"every candidate pair for task {record.task_id} was refused"


def _side(record: PairView) -> dict[str, Any]:
    return {
        "source_run_id": record.record_id,
        "task_id": record.task_id,
        "sig_hash": record.sig_hash,
        "category": str(record.category),  # a StrEnum's str() is its value
        "stream": record.stream,
        "source_file": record.source_file,
        "line": record.line,
    }


def _sample(chosen: PairView, rejected: PairView, recorded_at: str) -> dict[str, Any]:
    pair = f"{chosen.record_id}\x00{rejected.record_id}"
    pair_id = hashlib.sha256(pair.encode()).hexdigest()[:16]
    return {
        "schema": "preference_sample.v1",
        "id": f"pref:{pair_id}",
        "task_id": chosen.task_id,
        "prompt": [{"role": "user", "content": chosen.instruction}],
        "chosen": [{"role": "assistant", "content": chosen.response}],
        "rejected": [{"role": "assistant", "content": rejected.response}],
        "chosen_provenance": _side(chosen),
        "rejected_provenance": _side(rejected),
        "recorded_at": recorded_at,
    }


def _pair_problem(sample: PreferenceRow) -> str | None:
    chosen, rejected = sample.chosen_provenance, sample.rejected_provenance
    if chosen.source_run_id == rejected.source_run_id or chosen.sig_hash == rejected.sig_hash:
        return f"{sample.id} pairs a record with itself"
    if sample.chosen[0].content.strip() == sample.rejected[0].content.strip():
        return f"{sample.id} has identical chosen and rejected text"
    if not chosen.task_id == rejected.task_id == sample.task_id:
        return f"{sample.id} pairs across tasks"
    if chosen.category is not Category.accepted or rejected.category is Category.accepted:
        return f"{sample.id} pairs {chosen.category} over {rejected.category}"
    if rejected.category not in (Category.rejected, Category.partially_accepted):
        return f"{sample.id} has a {rejected.category} rejected side"
    return None
