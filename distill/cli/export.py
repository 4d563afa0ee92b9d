"""`distill export rag|sft|preference|all`: the datasets, behind the contamination firewall."""

from __future__ import annotations

from pathlib import Path

import typer

from distill.cli.common import (
    DryRunOpt,
    EngineOpt,
    HomeOpt,
    IncludePartialOpt,
    IncludeReviewOpt,
    JsonOpt,
    NoWaitOpt,
    RayAddressOpt,
    RecordedAtOpt,
    RepoRootOpt,
    engine_for,
    err_console,
    finish,
    handles_errors,
    home_writer,
    resolve_home,
    resolve_recorded_at,
)
from distill.engine import EngineName
from distill.stage_report import StageReport
from distill.stages.publish import exports_as_set
from distill.stages.registry import (
    EXPORT_STAGES,
    Stage,
    StageContext,
    StageFlags,
    export_stage,
)

app = typer.Typer(no_args_is_help=True, help="Write the datasets from data/scored-runs/.")


def _run(
    home: Path | None,
    recorded_at: str | None,
    stages: tuple[Stage, ...],
    *,
    repo_root: Path | None,
    engine: tuple[EngineName, str | None],
    flags: StageFlags,
    dry_run: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    resolved, config = resolve_home(home)
    names = " ".join(str(stage.export) for stage in stages)
    reports: list[StageReport] = []
    with (
        home_writer(resolved, f"export {names}", no_wait, dry_run=dry_run),
        engine_for(*engine) as chosen,
        exports_as_set(resolved, dry_run=dry_run) as exports,
        err_console.status("exporting…") as status,
    ):
        context = StageContext(
            resolved,
            config,
            resolve_recorded_at(recorded_at),
            repo_root,
            dry_run=dry_run,
            flags=flags,
            engine=chosen,
        )
        for stage in stages:
            status.update(f"exporting {stage.export}…")
            reports.append(stage.run(context))
            if not reports[-1].passed:
                exports.failed = True  # the set goes back as it was: all or none
                break
    finish(reports, as_json)


@app.command("rag")
@handles_errors
def rag_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    include_review: IncludeReviewOpt = False,
    repo_root: RepoRootOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Playbooks for retrieval: accepted + partially_accepted, never rejected."""
    _run(
        home,
        recorded_at,
        (export_stage("rag"),),
        repo_root=repo_root,
        engine=(engine, ray_address),
        flags=StageFlags(include_review=include_review),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )


@app.command("sft")
@handles_errors
def sft_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    include_partial: IncludePartialOpt = False,
    repo_root: RepoRootOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """TRL prompt/completion rows: accepted only; never rejected or needs_human_review."""
    _run(
        home,
        recorded_at,
        (export_stage("sft"),),
        repo_root=repo_root,
        engine=(engine, ray_address),
        flags=StageFlags(include_partial=include_partial),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )


@app.command("preference")
@handles_errors
def preference_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    repo_root: RepoRootOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """TRL prompt/chosen/rejected pairs within one task_id (at most 5 per task)."""
    _run(
        home,
        recorded_at,
        (export_stage("preference"),),
        repo_root=repo_root,
        engine=(engine, ray_address),
        flags=StageFlags(),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )


@app.command("all")
@handles_errors
def all_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    include_review: IncludeReviewOpt = False,
    include_partial: IncludePartialOpt = False,
    repo_root: RepoRootOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """All three exports, in the pipeline's order: rag, sft, preference."""
    _run(
        home,
        recorded_at,
        EXPORT_STAGES,
        repo_root=repo_root,
        engine=(engine, ray_address),
        flags=StageFlags(include_review=include_review, include_partial=include_partial),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )
