"""run-all: every stage under one run id, a receipt per stage, then summary and drift."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from distill.clock import utc_now, utc_stamp
from distill.config import Config
from distill.engine import LOCAL, Engine
from distill.errors import DistillError, InputMissingError, format_validation_error, os_error
from distill.home import Home
from distill.jsonio import write_bytes_atomic, write_json_atomic
from distill.runs.drift import compare_runs
from distill.runs.receipts import (
    digest_files,
    failed_receipt,
    git_sha,
    not_run_receipt,
    receipt_from_report,
)
from distill.runs.summary import render_summary_md, run_warnings
from distill.schemas import DatasetInfo, DriftReport, RunSummary, StageReceipt
from distill.secrets import scrub
from distill.stages.publish import ExportSet
from distill.stages.registry import EXPORT_STAGES, Stage, StageContext, StageFlags, pipeline


@dataclass(frozen=True)
class RunOptions:
    recorded_at: str
    repo_root: Path | None = None
    include_review: bool = False
    include_partial: bool = False
    drift_threshold: float = 0.2
    index: bool = True
    embedder: str | None = None  # None: minilm (the CLI resolves --embedder and its env var)
    seed: int = 0
    index_uri: str | None = None
    engine: Engine = LOCAL  # where the stages' per-row work runs (distill.engine)


@dataclass
class RunResult:
    summary: RunSummary
    drift: DriftReport
    folder: Path
    receipts: list[StageReceipt] = field(default_factory=list)


def stage_context(
    home: Home, config: Config, options: RunOptions, *, dry_run: bool = False
) -> StageContext:
    """What every stage of the run is given."""
    flags = StageFlags(
        include_review=options.include_review,
        include_partial=options.include_partial,
        index_uri=options.index_uri,
        embedder=options.embedder,
        seed=options.seed,
    )
    return StageContext(
        home,
        config,
        options.recorded_at,
        options.repo_root,
        dry_run=dry_run,
        flags=flags,
        engine=options.engine,
    )


def new_run_id() -> str:
    """Sorts by start time, so the previous run is the previous name."""
    return utc_stamp() + "-" + uuid.uuid4().hex[:6]


def run_all(
    home: Home,
    config: Config,
    options: RunOptions,
    *,
    stages: Sequence[Stage] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every stage; a failed stage stops the ones after it (their receipts say not_run).

    The export stages publish as a set: when one fails, the exports are put back as they were
    before the run. Receipts and the summary are written whenever the disk allows; a write the
    OS refuses is raised (as :class:`~distill.errors.OutputError`) after every other write.
    """
    run_id = new_run_id()
    folder = home.reports_dir / run_id
    previous, unreadable = _previous_summary(home)
    sha = git_sha(home.root)
    started = utc_now(micro=True)
    writes = _ReportWriter()
    receipts, failed = _run_stages(
        home,
        pipeline(index=options.index) if stages is None else stages,
        stage_context(home, config, options),
        run=(run_id, sha, folder),
        writes=writes,
        on_stage=on_stage,
    )
    summary = _summary(home, run_id, options, receipts, sha, started, failed)
    drift = compare_runs(summary, previous, options.drift_threshold)
    if unreadable:
        drift = drift.model_copy(update={"message": f"{drift.message} ({unreadable})"})
    summary = summary.model_copy(update={"drift_level": drift.level})
    writes.json(folder / "drift.json", drift.model_dump(mode="json", by_alias=True))
    writes.json(folder / "summary.json", summary.model_dump(mode="json", by_alias=True))
    writes.attempt(
        lambda: write_bytes_atomic(
            folder / "summary.md", render_summary_md(summary, drift).encode()
        )
    )
    writes.raise_first()
    return RunResult(summary=summary, drift=drift, folder=folder, receipts=receipts)


def _run_stages(
    home: Home,
    stages: Sequence[Stage],
    context: StageContext,
    *,
    run: tuple[str, str | None, Path],
    writes: _ReportWriter,
    on_stage: Callable[[str], None] | None,
) -> tuple[list[StageReceipt], str | None]:
    """Each stage in turn, its receipt written as soon as it ends: the receipts, and the stage
    that failed. A failed export stage puts every export back as it was before the run."""
    run_id, sha, folder = run
    receipts: list[StageReceipt] = []
    failed: Stage | None = None
    exports = ExportSet(home)
    try:
        for stage in stages:
            if failed is not None:
                receipt = not_run_receipt(
                    run_id, stage.name, f"stage {failed.name} failed", sha=sha
                )
            else:
                if stage.export and not exports.kept:
                    exports.keep()
                if on_stage is not None:
                    on_stage(stage.name)
                receipt = _run_stage(home, run_id, stage, context, sha)
                if receipt.status != "passed":
                    failed = stage
            writes.json(
                folder / f"{stage.name}.json", receipt.model_dump(mode="json", by_alias=True)
            )
            receipts.append(receipt)
    finally:
        if exports.kept:
            if failed is not None and failed.export:
                exports.failed = True
                writes.attempt(exports.restore)
            writes.attempt(exports.discard)
    return receipts, failed.name if failed is not None else None


class _ReportWriter:
    """Writes that must all be tried even when one fails (a full disk frees up, a folder
    is read-only): the first OS error is kept and raised at the end."""

    def __init__(self) -> None:
        self.first: OSError | None = None

    def attempt(self, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as err:
            self.first = self.first or err

    def json(self, path: Path, payload: object) -> None:
        self.attempt(lambda: write_json_atomic(path, payload))

    def raise_first(self) -> None:
        if self.first is not None:
            raise os_error(self.first, "could not write the run's records:") from self.first


def _run_stage(
    home: Home, run_id: str, stage: Stage, context: StageContext, sha: str | None
) -> StageReceipt:
    started, clock = utc_now(micro=True), time.perf_counter()
    try:
        report = stage.run(context)
    except Exception as err:  # every failure becomes a failed receipt, never a lost run
        expected = isinstance(err, DistillError | ValidationError | OSError)
        if not expected and os.environ.get("DISTILL_DEBUG") == "1":
            raise
        errors = stage_error_lines(err)
        return failed_receipt(
            run_id,
            stage.name,
            errors,
            sha=sha,
            params={},
            started=started,
            ended=utc_now(micro=True),
            duration=time.perf_counter() - clock,
        )
    return receipt_from_report(
        home,
        run_id,
        report,
        sha=sha,
        started=started,
        ended=utc_now(micro=True),
        duration=time.perf_counter() - clock,
    )


def stage_error_lines(err: BaseException) -> list[str]:
    """A stage's exception as the lines its failed receipt records (never a traceback, never
    a configured secret)."""
    return [scrub(line) for line in _error_lines(err)]


def _error_lines(err: BaseException) -> list[str]:
    if isinstance(err, ValidationError):
        return [f"a record failed its schema: {format_validation_error(err)}"]
    if isinstance(err, OSError):
        oserr = os_error(err)
        return [str(oserr), f"hint: {oserr.hint}"]
    if isinstance(err, DistillError):
        return [str(err), *getattr(err, "errors", [])]
    return [
        f"unexpected {type(err).__name__}: {str(err)[:300]}",
        "hint: a bug in distill; DISTILL_DEBUG=1 shows the traceback",
    ]


def _summary(
    home: Home,
    run_id: str,
    options: RunOptions,
    receipts: list[StageReceipt],
    sha: str | None,
    started: str,
    failed: str | None,
) -> RunSummary:
    exports = {stage.name: stage.export for stage in EXPORT_STAGES if stage.export}
    datasets = [
        DatasetInfo(name=export, path=digest.path, records=digest.records, sha256=digest.sha256)
        for export in exports.values()
        for digest in digest_files(home, [home.export_path(export)])
    ]
    quarantine = {
        exports[receipt.stage]: dict(receipt.counts.quarantined)
        for receipt in receipts
        if receipt.stage in exports and receipt.counts
    }
    run_hash = None
    if failed is None:
        joined = "\n".join(f"{r.stage}:{r.output_hash}" for r in receipts)
        run_hash = hashlib.sha256(joined.encode()).hexdigest()
    return RunSummary(
        run_id=run_id,
        recorded_at=options.recorded_at,
        git_sha=sha,
        passed=failed is None,
        failed_stage=failed,
        run_hash=run_hash,
        stages=receipts,
        datasets=datasets,
        quarantine=quarantine,
        warnings=run_warnings(receipts),
        drift_level="first_run",
        started_at=started,
        ended_at=utc_now(micro=True),
    )


def run_folders(home: Home) -> list[Path]:
    """Completed runs (those with a summary.json), oldest first."""
    folder = home.reports_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "summary.json").is_file())


def _previous_summary(home: Home) -> tuple[RunSummary | None, str | None]:
    """The newest run this folder holds; an unreadable one is named, never fatal."""
    try:
        return latest_summary(home), None
    except DistillError as err:
        return None, f"previous run unreadable, compared against nothing: {str(err)[:120]}"


def latest_summary(home: Home) -> RunSummary | None:
    folders = run_folders(home)
    return load_summary(folders[-1]) if folders else None


def load_summary(folder: Path) -> RunSummary:
    try:
        return RunSummary.model_validate_json((folder / "summary.json").read_bytes())
    except (OSError, ValidationError) as err:
        raise DistillError(
            f"{folder / 'summary.json'} is not a valid run_summary.v1: {err}",
            hint="rerun `distill run-all`",
        ) from err


def find_run(home: Home, run_id: str | None) -> Path:
    folders = run_folders(home)
    if not folders:
        raise InputMissingError(
            f"no runs under {home.reports_dir}", hint="run `distill run-all` first"
        )
    if run_id is None:
        return folders[-1]
    for folder in folders:
        if folder.name == run_id:
            return folder
    raise InputMissingError(
        f"no run {run_id!r} under {home.reports_dir}",
        hint="`distill receipts show --latest` shows the newest run",
    )
