"""run-all, receipts show, acceptance: the pipeline as one run, and the gate that proves it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from distill import settings
from distill.cli.common import (
    DriftOpt,
    DryRunOpt,
    EmbedderOpt,
    EngineOpt,
    HomeOpt,
    IncludePartialOpt,
    IncludeReviewOpt,
    IndexDirOpt,
    JsonOpt,
    NoWaitOpt,
    RayAddressOpt,
    RecordedAtOpt,
    RepoRootOpt,
    SeedOpt,
    engine_for,
    err_console,
    handles_errors,
    home_writer,
    index_at,
    print_json,
    print_report,
    resolve_home,
    resolve_recorded_at,
    table,
)
from distill.config import Config
from distill.engine import EngineName
from distill.errors import ValidationFailed
from distill.home import Home
from distill.runs import RunOptions, find_run, load_summary, run_all
from distill.runs.acceptance import DEFAULT_FIXTURE, run_acceptance, write_acceptance_report
from distill.runs.preview import preview_all
from distill.schemas import RunSummary

receipts_app = typer.Typer(no_args_is_help=True, help="Inspect the receipts of past runs.")


@handles_errors
def run_all_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    include_review: IncludeReviewOpt = False,
    include_partial: IncludePartialOpt = False,
    repo_root: RepoRootOpt = None,
    drift_threshold: DriftOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    index_dir: IndexDirOpt = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Skip the index stage.")] = False,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """collect → score → export rag → export sft → export preference → index, one run id.

    Writes reports/distillation/<run_id>/: a receipt per stage, summary.json, summary.md and
    drift.json. A failed stage stops the ones after it; the exit code is then 1. With
    --dry-run every stage reports what it would do and nothing is written (no receipts
    either); each stage then reads the files of the last real run.
    """
    resolved, config = resolve_home(home)
    index = index_at(resolved, index_dir, embedder, seed)
    options = RunOptions(
        recorded_at=resolve_recorded_at(recorded_at),
        repo_root=repo_root,
        include_review=include_review,
        include_partial=include_partial,
        drift_threshold=settings.drift_threshold(drift_threshold, os.environ),
        index=not no_index,
        embedder=index.embedder,
        seed=index.seed,
        index_uri=index.uri,
    )
    if dry_run:
        with engine_for(engine, ray_address) as chosen:
            _preview(resolved, config, replace(options, engine=chosen), as_json)
        return
    with (
        home_writer(resolved, "run-all", no_wait),
        engine_for(engine, ray_address) as chosen,
        err_console.status("run-all…") as status,
    ):
        options = replace(options, engine=chosen)
        result = run_all(
            resolved, config, options, on_stage=lambda stage: status.update(f"run-all: {stage}…")
        )
    _print_summary(result.summary)
    level = result.drift.level
    colour = {"ok": "green", "first_run": "green", "warn": "yellow", "alert": "red"}[level]
    err_console.print(f"drift: [{colour}]{level}[/]: {escape(result.drift.message)}")
    for finding in result.drift.findings[:10]:
        err_console.print(f"  {finding.level}: {escape(finding.message)}", highlight=False)
    err_console.print(f"receipts: {resolved.relative(result.folder)}/", highlight=False)
    if as_json:
        print_json(result.summary.model_dump(mode="json", by_alias=True))
    if not result.summary.passed:
        failed = next(r for r in result.summary.stages if r.stage == result.summary.failed_stage)
        raise ValidationFailed(f"run failed at stage {failed.stage}", failed.validation.errors[:5])


def _preview(home: Home, config: Config, options: RunOptions, as_json: bool) -> None:
    """run-all --dry-run: it writes nothing, so it takes no lock."""
    with err_console.status("run-all --dry-run…") as status:
        preview = preview_all(
            home, config, options, on_stage=lambda stage: status.update(f"previewing {stage}…")
        )
    for report in preview.reports:
        print_report(report)
    for stage, why in preview.not_previewed:
        err_console.print(f"[yellow]{stage}[/] not previewed: {escape(why)}", highlight=False)
    if as_json:
        print_json(preview.to_dict())
    failed = [report for report in preview.reports if not report.passed]
    if failed:
        raise ValidationFailed(f"stage {failed[0].stage} failed", failed[0].errors)


@receipts_app.command("show")
@handles_errors
def receipts_show_command(
    home: HomeOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="The run to show.")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Show the newest run (default).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a run's summary and stage receipts (the newest run unless --run-id is given)."""
    resolved, _ = resolve_home(home)
    summary = load_summary(find_run(resolved, None if latest else run_id))
    if as_json:
        print_json(summary.model_dump(mode="json", by_alias=True))
        return
    _print_summary(summary, stdout=True)


@handles_errors
def acceptance_command(
    home: HomeOpt = None,
    fixture: Annotated[
        Path,
        typer.Option(
            "--fixture",
            help="An acceptance fixture home (with data/_kb/, repo/, expected.json).",
            exists=True,
            file_okay=False,
        ),
    ] = DEFAULT_FIXTURE,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline twice on the acceptance fixture and check every invariant.

    Writes reports/distillation/acceptance-report.md under the home; exit code 0 only when every
    invariant holds.
    """
    resolved, _ = resolve_home(home)
    with err_console.status("acceptance…") as status:
        report = run_acceptance(fixture, on_stage=lambda s: status.update(f"acceptance: {s}…"))
    for check in report.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        err_console.print(f"{mark} {escape(check.name)}: {escape(check.detail)}", highlight=False)
    path = write_acceptance_report(resolved, report)
    passed = sum(check.passed for check in report.checks)
    err_console.print(
        f"{passed}/{len(report.checks)} invariants hold; report: {path}", highlight=False
    )
    if as_json:
        print_json(report.to_dict())
    if not report.passed:
        failed = [check.name for check in report.checks if not check.passed]
        raise ValidationFailed("acceptance failed", failed)


def _print_summary(summary: RunSummary, *, stdout: bool = False) -> None:
    console = Console() if stdout else err_console
    verdict = "[green]passed[/]" if summary.passed else f"[red]FAILED at {summary.failed_stage}[/]"
    if summary.warnings:
        verdict += f" [yellow]with {len(summary.warnings)} warning(s)[/]"
    console.print(
        f"run {summary.run_id}: {verdict}; run_hash {summary.run_hash or 'n/a'}", highlight=False
    )
    rows = []
    for receipt in summary.stages:
        counts = receipt.counts
        cells = (
            ["-"] * 4
            if counts is None
            else [
                str(counts.records_in),
                str(counts.records_out),
                str(sum(counts.skipped.values())),
                str(sum(counts.quarantined.values())),
            ]
        )
        rows.append([receipt.stage, receipt.status, *cells, escape(receipt.reason or "")])
    console.print(
        table("stages", ["stage", "status", "in", "out", "skipped", "quarantined", "reason"], rows)
    )
    for warning in summary.warnings:  # on stderr whatever the table went to: never missed
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
