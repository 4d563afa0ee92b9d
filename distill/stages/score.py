"""score: evidence → scored runs, by each stream's deterministic category rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.config import Config
from distill.engine import LOCAL, Engine, map_groups
from distill.errors import InputMissingError, ValidationFailed, format_validation_error
from distill.home import Home
from distill.jsonio import RawLine, atomic_writer, iter_json_objects, validated_line
from distill.limits import LineLimits
from distill.schemas import Category, EvidenceRecord, ScoredRun, most_conservative
from distill.sources import FACTS_STREAM, OBSERVER_STREAM, ScoringContext, Source
from distill.stage_report import StageReport
from distill.stages.collect import _remove_stale


def score(
    home: Home,
    config: Config,
    *,
    recorded_at: str,
    dry_run: bool = False,
    engine: Engine = LOCAL,
) -> StageReport:
    """Score every evidence file. Rerunning on unchanged evidence writes identical bytes.

    Two passes: the first gathers what cross-stream rules need (the most conservative verdict per
    task for distilled facts, the tasks an observer accepted for replay runs); memory grows with
    the number of tasks, never with the number of rows. The second runs each row's rule
    (:func:`score_rows`) on ``engine``; the files are read and written here.
    """
    report = StageReport("score", params={"recorded_at": recorded_at}, dry_run=dry_run)
    files = _evidence_files(home, config)
    report.inputs = list(files.values())
    context = build_context(files, config)
    limits = LineLimits.of(config)
    work = ScoreWork(
        sources=tuple(config.sources[name] for name in files),
        paths=tuple(str(path) for path in files.values()),
        context=context,
        recorded_at=recorded_at,
    )
    rows = [_evidence_rows(path, limits, number) for number, path in enumerate(files.values())]
    written: set[Path] = set()
    groups = map_groups(engine, score_rows, work, rows)
    for name, results in zip(files, groups, strict=True):
        out_path = home.scored_dir / f"{name}.jsonl"
        if dry_run:
            _tally(results, report, write=None)
            continue
        with atomic_writer(out_path) as handle:
            _tally(results, report, write=handle.write)
        written.add(out_path)
    if not dry_run:
        _remove_stale(home.scored_dir, keep=written, schema="scored_run.v1")
        report.outputs = sorted(written)
    report.extra["tasks_with_verdicts"] = len(context.task_floor)
    return report.close()


def build_context(files: dict[str, Path], config: Config) -> ScoringContext:
    """Observer verdicts first (they upgrade replay runs), then each task's most conservative
    verdict-bearing category across every stream but the facts themselves."""
    observer_accepted: set[str] = set()
    limit = LineLimits.of(config).evidence
    if OBSERVER_STREAM in files:
        source = config.sources[OBSERVER_STREAM]
        for record in _scoring_views(files[OBSERVER_STREAM], limit):
            verdict = source.score(record, ScoringContext())
            if record.task_id and verdict.category is Category.accepted:
                observer_accepted.add(record.task_id)
    context = ScoringContext(observer_accepted_tasks=frozenset(observer_accepted))
    floors: dict[str, Category] = {}
    for name, path in files.items():
        if name == FACTS_STREAM:
            continue
        source = config.sources[name]
        for record in _scoring_views(path, limit):
            if not record.task_id:
                continue
            verdict = source.score(record, context)
            if verdict.verdict_bearing:
                known = floors.get(record.task_id, verdict.category)
                floors[record.task_id] = most_conservative([known, verdict.category])
    return ScoringContext(
        task_floor=floors, observer_accepted_tasks=context.observer_accepted_tasks
    )


@dataclass(frozen=True, slots=True)
class _ScoringView:
    task_id: str | None
    signals: dict[str, Any]


def _scoring_views(path: Path, limit: int) -> Iterator[_ScoringView]:
    """The first pass reads only what the rules need; the second pass validates every line."""
    for _, row in iter_json_objects(path, limit):
        task_id, signals = row.get("task_id"), row.get("signals")
        if isinstance(signals, dict) and (task_id is None or isinstance(task_id, str)):
            yield _ScoringView(task_id, signals)


@dataclass(frozen=True)
class ScoreWork:
    """What the rule needs besides the row: per evidence file its source and path, in order."""

    sources: tuple[Source, ...]
    paths: tuple[str, ...]
    context: ScoringContext
    recorded_at: str


@dataclass(frozen=True, slots=True)
class ScoredLine:
    line: bytes
    category: str


def score_rows(work: ScoreWork, rows: list[tuple[int, int, dict[str, Any]]]) -> list[ScoredLine]:
    """The rule, on either engine: each (file number, line number, evidence row) → its
    scored_run.v1 line. A row that is not evidence.v1 stops the stage (collect never writes one)."""
    return [_score_row(work, number, line_no, row) for number, line_no, row in rows]


def _score_row(work: ScoreWork, number: int, line_no: int, row: dict[str, Any]) -> ScoredLine:
    try:
        record = EvidenceRecord.model_validate(row)
    except ValidationError as err:
        raise ValidationFailed(
            f"{work.paths[number]}:{line_no} is not valid evidence.v1",
            [format_validation_error(err)],
            hint=_REGENERATE,
        ) from err
    verdict = work.sources[number].score(record, work.context)
    payload = {
        **row,
        "schema": "scored_run.v1",
        "category": verdict.category.value,
        "rule": verdict.rule,
        "provenance": {**row["provenance"], "recorded_at": work.recorded_at},
    }
    return ScoredLine(validated_line(ScoredRun, payload), verdict.category.value)


def _tally(
    results: Iterator[ScoredLine], report: StageReport, *, write: Callable[[bytes], object] | None
) -> None:
    for result in results:
        report.records_in += 1
        report.records_out += 1
        report.out_by_category[result.category] += 1
        if write is not None:
            write(result.line)


_REGENERATE = "rerun `distill collect` to regenerate the evidence files"


def _evidence_rows(
    path: Path, limits: LineLimits, number: int
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(file number, line number, row) of every line; a line that is no JSON object stops the
    stage."""

    def refuse(raw: RawLine, why: str) -> None:  # collect never writes one: a changed file
        if raw.data is None:
            why = f"{raw.size} bytes, over {limits.describe('evidence')}"
        raise ValidationFailed(f"{path}:{raw.line_no} is {why}", [], hint=_REGENERATE)

    for raw, row in iter_json_objects(path, limits.evidence, on_bad=refuse):
        yield number, raw.line_no, row


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
