"""The pipeline's stages, in order, each behind one signature: a StageContext in, a report out.

``distill run-all``, the export commands, the tests and the benchmarks read this list instead
of writing their own; a new stage is one entry here. Later stages read what earlier ones
wrote, so the order is the pipeline's::

    >>> [stage.name for stage in pipeline()]
    ['collect', 'score', 'export_rag', 'export_sft', 'export_preference', 'index']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distill.config import Config
from distill.engine import LOCAL, Engine
from distill.errors import ConfigError
from distill.home import Home
from distill.schemas import ExportName
from distill.stage_report import StageReport
from distill.stages.collect import collect
from distill.stages.export_datasets import export_rag, export_sft
from distill.stages.export_preference import export_preference
from distill.stages.score import score


@dataclass(frozen=True)
class StageFlags:
    """The switches a stage may read; each stage reads its own and ignores the rest."""

    include_review: bool = False  # export_rag: also needs_human_review runs
    include_partial: bool = False  # export_sft: also partially_accepted runs
    index_uri: str | None = None  # index: the LanceDB database (None: <home>/index)
    embedder: str | None = None  # index: minilm-onnx-int8 (None), minilm-onnx, minilm, hash-<dim>
    seed: int = 0  # index: the hashing embedder's seed


@dataclass(frozen=True)
class StageContext:
    """Everything a stage is given. Two runs with equal contexts on equal inputs write equal
    bytes: ``recorded_at`` is the only time a stage writes."""

    home: Home
    config: Config
    recorded_at: str
    repo_root: Path | None = None
    dry_run: bool = False  # compute and report; write nothing
    flags: StageFlags = field(default_factory=StageFlags)
    progress: Callable[[str], None] | None = None  # a status line for long stages
    engine: Engine = LOCAL  # where the per-row work runs (distill.engine)

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its name (the receipt's file name in a run) and how to run it."""

    name: str
    body: Callable[[StageContext], StageReport]
    export: ExportName | None = None  # the export stages publish as one set

    def run(self, ctx: StageContext) -> StageReport:
        """The stage's report; one of a run on Ray says so (``extra.engine``)."""
        report = self.body(ctx)
        if ctx.engine.name != "local":
            report.extra["engine"] = ctx.engine.describe()
        return report


def _collect(ctx: StageContext) -> StageReport:
    return collect(
        ctx.home,
        ctx.config,
        recorded_at=ctx.recorded_at,
        dry_run=ctx.dry_run,
        progress=lambda stream, n: ctx.say(f"collecting {stream}: {n:,}"),
        engine=ctx.engine,
    )


def _score(ctx: StageContext) -> StageReport:
    return score(
        ctx.home, ctx.config, recorded_at=ctx.recorded_at, dry_run=ctx.dry_run, engine=ctx.engine
    )


def _export_rag(ctx: StageContext) -> StageReport:
    return export_rag(
        ctx.home,
        recorded_at=ctx.recorded_at,
        repo_root=ctx.repo_root,
        include_review=ctx.flags.include_review,
        dry_run=ctx.dry_run,
        config=ctx.config,
        engine=ctx.engine,
    )


def _export_sft(ctx: StageContext) -> StageReport:
    return export_sft(
        ctx.home,
        recorded_at=ctx.recorded_at,
        repo_root=ctx.repo_root,
        include_partial=ctx.flags.include_partial,
        dry_run=ctx.dry_run,
        config=ctx.config,
        engine=ctx.engine,
    )


def _export_preference(ctx: StageContext) -> StageReport:
    return export_preference(
        ctx.home,
        recorded_at=ctx.recorded_at,
        repo_root=ctx.repo_root,
        dry_run=ctx.dry_run,
        config=ctx.config,
        engine=ctx.engine,
    )


def _index(ctx: StageContext) -> StageReport:
    # imported here: numpy, LanceDB and the embedder load only for a run that builds the index
    from distill.index.stage import index_export
    from distill.index.store import resolve_index_uri

    uri = resolve_index_uri(ctx.flags.index_uri, ctx.home.index_dir)
    embedder = ctx.engine.embedder(ctx.flags.embedder, ctx.flags.seed)
    report, _ = index_export(
        ctx.home,
        uri,
        embedder,
        dry_run=ctx.dry_run,
        progress=lambda done, total: ctx.say(f"embedding {done:,}/{total:,}…"),
    )
    return report


STAGES: tuple[Stage, ...] = (
    Stage("collect", _collect),
    Stage("score", _score),
    Stage("export_rag", _export_rag, export="rag"),
    Stage("export_sft", _export_sft, export="sft"),
    Stage("export_preference", _export_preference, export="preference"),
    Stage("index", _index),
)
EXPORT_STAGES: tuple[Stage, ...] = tuple(stage for stage in STAGES if stage.export)


def pipeline(*, index: bool = True) -> tuple[Stage, ...]:
    """The stages of run-all, in order; ``index=False`` stops after the exports."""
    return STAGES if index else tuple(stage for stage in STAGES if stage.name != "index")


def stage_named(name: str) -> Stage:
    """The stage called ``name`` (``collect``, ``export_rag``, …, ``index``)."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    known = ", ".join(stage.name for stage in STAGES)
    raise ConfigError(f"no stage {name!r}", hint=f"the stages are {known}")


def export_stage(export: str) -> Stage:
    """The stage that writes the export ``export`` (``rag``, ``sft`` or ``preference``)."""
    for stage in EXPORT_STAGES:
        if stage.export == export:
            return stage
    known = ", ".join(str(stage.export) for stage in EXPORT_STAGES)
    raise ConfigError(f"no export {export!r}", hint=f"the exports are {known}")
