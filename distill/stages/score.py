"""score: evidence → scored runs, by each stream's deterministic category rule."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np
from pydantic import ValidationError

from distill.config import Config
from distill.engine import LOCAL, Engine, map_groups
from distill.errors import InputMissingError, ValidationFailed, format_validation_error
from distill.home import Home
from distill.jsonio import (
    RawLine,
    atomic_writer,
    canonical_line,
    iter_json_objects,
    validated_line,
)
from distill.limits import LineLimits
from distill.schemas import Category, EvidenceRecord, ScoredRun
from distill.schemas.fast import EvidenceRow
from distill.sources import FACTS_STREAM, OBSERVER_STREAM, ScoringContext, Source
from distill.sources.spec import Scorable
from distill.stage_report import StageReport
from distill.stages.collect import _remove_stale
from distill.stages.prechecks import KEY_DTYPE, NO_KEY, forget_id_keys, id_key, remember_id_keys


def score(
    home: Home,
    config: Config,
    *,
    recorded_at: str,
    dry_run: bool = False,
    engine: Engine = LOCAL,
) -> StageReport:
    """Score every evidence file. Rerunning on unchanged evidence writes identical bytes.

    One pass: each file is read once, in the order the cross-stream rules need. The observer
    reviews come first (the tasks an observer accepted, which replay runs read), then every
    other stream but the distilled facts (each task's most conservative verdict-bearing
    category, which the facts inherit), the facts last. Memory grows with the number of tasks,
    never with the number of rows. Each row's rule (:func:`score_rows`) runs on ``engine``;
    the files are read and written here.
    """
    report = StageReport("score", params={"recorded_at": recorded_at}, dry_run=dry_run)
    files = _evidence_files(home, config)
    report.inputs = list(files.values())
    limits = LineLimits.of(config)
    gathered = _Gathered()
    forget_id_keys()  # the keys of another home's (or an older) set of scored runs
    counts: dict[str, Counter[str]] = {}
    written: set[Path] = set()
    for phase in _phases(list(files)):
        work = ScoreWork(
            sources=tuple(config.sources[name] for name in phase),
            paths=tuple(str(files[name]) for name in phase),
            context=gathered.context(settled=phase == [FACTS_STREAM]),
            recorded_at=recorded_at,
        )
        rows = [_evidence_rows(files[name], limits, number) for number, name in enumerate(phase)]
        groups = map_groups(engine, score_rows, work, rows, weigh=_row_bytes)
        for name, results in zip(phase, groups, strict=True):
            observed = gathered.observe(name, results)
            out_path = home.scored_dir / f"{name}.jsonl"
            if dry_run:
                counts[name] = _tally(observed, report, write=None)
                continue
            keys = array("i")  # per line, its id's key, as the exports' duplicate scan reads it
            with atomic_writer(out_path) as handle:
                counts[name] = _tally(
                    observed, report, write=handle.write, keys=(keys, limits.scored)
                )
            known = np.frombuffer(keys, dtype=KEY_DTYPE) if keys else np.empty(0, KEY_DTYPE)
            remember_id_keys(out_path, known, limits.scored)
            written.add(out_path)
    for name in files:  # the report counts categories in file order, as it always has
        report.out_by_category.update(counts[name])
    if not dry_run:
        _remove_stale(home.scored_dir, keep=written, schema="scored_run.v1")
        report.outputs = sorted(written)
    report.extra["tasks_with_verdicts"] = len(gathered.floors)
    return report.close()


def _phases(names: list[str]) -> list[list[str]]:
    """The streams in the order the rules need them: observer, the rest, facts."""
    first = [name for name in names if name == OBSERVER_STREAM]
    last = [name for name in names if name == FACTS_STREAM]
    middle = [name for name in names if name not in (OBSERVER_STREAM, FACTS_STREAM)]
    return [phase for phase in (first, middle, last) if phase]


class _Gathered:
    """What the cross-stream rules read, gathered from the scored rows as they go by: the
    tasks an observer accepted (from the observer stream), and per task the most conservative
    verdict-bearing category across every stream but the facts themselves."""

    def __init__(self) -> None:
        self.observer_accepted: set[str] = set()
        self.floors: dict[str, Category] = {}

    def context(self, *, settled: bool = False) -> ScoringContext:
        """What the rules of the next phase read: a snapshot, or (``settled``: the facts phase,
        whose rows change nothing here) the floors themselves, not a copy as large as the
        tasks are many."""
        return ScoringContext(
            task_floor=self.floors if settled else dict(self.floors),
            observer_accepted_tasks=frozenset(self.observer_accepted),
        )

    def observe(self, name: str, results: Iterator[ScoredLine]) -> Iterator[ScoredLine]:
        if name == FACTS_STREAM:
            yield from results
            return
        floors, observer = self.floors, name == OBSERVER_STREAM
        for result in results:
            task_id = result.task_id
            if task_id:
                category = Category(result.category)
                if observer and category is Category.accepted:
                    self.observer_accepted.add(task_id)
                if result.bearing:  # the most conservative: the lower trust wins, ties keep
                    known = floors.get(task_id)
                    if known is None or category.trust < known.trust:
                        floors[task_id] = category
            yield result


@dataclass(frozen=True)
class ScoreWork:
    """What the rule needs besides the row: per evidence file its source and path, in order."""

    sources: tuple[Source, ...]
    paths: tuple[str, ...]
    context: ScoringContext
    recorded_at: str


class ScoredLine(NamedTuple):
    """One scored_run.v1 line, with what the cross-stream rules gather from it, and its id's
    key for the exports' duplicate scan (:func:`~distill.stages.prechecks.remember_id_keys`)."""

    line: bytes
    category: str
    task_id: str | None
    bearing: bool  # verdict-bearing: it counts towards its task's most conservative verdict
    id_key: int = NO_KEY


EvidenceItem = tuple[int, int, dict[str, Any], int]
"""(file number, line number, evidence row, the line's bytes): what :func:`score_rows` reads."""


def score_rows(work: ScoreWork, rows: list[EvidenceItem]) -> list[ScoredLine]:
    """The rule, on either engine: each (file number, line number, evidence row, size) → its
    scored_run.v1 line. A row that is not evidence.v1 stops the stage (collect never writes one)."""
    return [_score_row(work, number, line_no, row) for number, line_no, row, _ in rows]


def _row_bytes(item: EvidenceItem) -> int:
    return item[3]


def _score_row(work: ScoreWork, number: int, line_no: int, row: dict[str, Any]) -> ScoredLine:
    record = _evidence(work.paths[number], line_no, row)
    verdict = work.sources[number].score(record, work.context)
    category = verdict.category.value
    payload = {
        **row,
        "schema": "scored_run.v1",
        "category": category,
        "rule": verdict.rule,
        "provenance": {**row["provenance"], "recorded_at": work.recorded_at},
    }
    if isinstance(record, EvidenceRow) and _spelled_out(row) and isinstance(verdict.rule, str):
        line = canonical_line(payload)  # valid by construction: see _spelled_out
    else:
        line = validated_line(ScoredRun, payload)
    record_id = row["id"]
    key = id_key(record_id) if isinstance(record_id, str) and record_id else NO_KEY
    return ScoredLine(line, category, record.task_id, verdict.verdict_bearing, key)


_EVIDENCE_KEYS = frozenset(info.alias or name for name, info in EvidenceRecord.model_fields.items())


def _spelled_out(row: dict[str, Any]) -> bool:
    """Whether a row msgspec accepted as evidence.v1 makes a scored_run.v1 payload that needs no
    second validation: it spells out every field (nothing left to a default), and scored_run.v1
    is evidence.v1's fields, every one validated already, plus ``category`` (a Category's
    value), ``rule`` (a string) and the provenance's ``recorded_at`` (a string). A row only
    pydantic accepted, or one that leaves a field out, goes through :func:`validated_line`."""
    return row.keys() == _EVIDENCE_KEYS


def _evidence(path: str, line_no: int, row: dict[str, Any]) -> Scorable:
    """The row as evidence.v1: msgspec's strict mirror first, pydantic for what it refuses."""
    try:
        return msgspec.convert(row, EvidenceRow)
    except msgspec.ValidationError:
        pass
    try:
        return EvidenceRecord.model_validate(row)
    except ValidationError as err:
        raise ValidationFailed(
            f"{path}:{line_no} is not valid evidence.v1",
            [format_validation_error(err)],
            hint=_REGENERATE,
        ) from err


def _tally(
    results: Iterator[ScoredLine],
    report: StageReport,
    *,
    write: Callable[[bytes], object] | None,
    keys: tuple[array[int], int] | None = None,
) -> Counter[str]:
    """Write and count one file's lines; its categories are returned, not added. ``keys`` (an
    array, the scored-run line limit) gathers each line's id key, or NO_KEY for a line over
    the limit (the scan reads none of it)."""
    categories: Counter[str] = Counter()
    for result in results:
        report.records_in += 1
        report.records_out += 1
        categories[result.category] += 1
        if write is not None:
            write(result.line)
        if keys is not None:
            keys[0].append(result.id_key if len(result.line) - 1 <= keys[1] else NO_KEY)
    return categories


_REGENERATE = "rerun `distill collect` to regenerate the evidence files"


def _evidence_rows(path: Path, limits: LineLimits, number: int) -> Iterator[EvidenceItem]:
    """(file number, line number, row, size) of every line; a line that is no JSON object
    stops the stage."""

    def refuse(raw: RawLine, why: str) -> None:  # collect never writes one: a changed file
        if raw.data is None:
            why = f"{raw.size} bytes, over {limits.describe('evidence')}"
        raise ValidationFailed(f"{path}:{raw.line_no} is {why}", [], hint=_REGENERATE)

    for raw, row in iter_json_objects(path, limits.evidence, on_bad=refuse, digest=False):
        yield number, raw.line_no, row, raw.size


def _evidence_files(home: Home, config: Config) -> dict[str, Path]:
    folder = home.evidence_dir
    if not folder.is_dir():
        raise InputMissingError(f"no evidence under {folder}", hint="run `distill collect` first")
    files = {path.stem: path for path in sorted(folder.glob("*.jsonl"))}
    unknown = sorted(set(files) - set(config.sources))
    if unknown:
        raise InputMissingError(
            f"evidence for streams with no adapter: {unknown}",
            hint="restore their [sources.*] tables in distill.toml or rerun `distill collect`",
        )
    return files
