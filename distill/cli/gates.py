"""audit-full and release-freeze: the system checks itself; a release is a manifest of hashes."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

import typer
from rich.markup import escape

from distill import settings
from distill.cli.common import (
    DriftOpt,
    EmbedderOpt,
    HomeOpt,
    IndexDirOpt,
    JsonOpt,
    NoWaitOpt,
    SeedOpt,
    err_console,
    handles_errors,
    home_writer,
    index_at,
    print_json,
    resolve_home,
)
from distill.errors import ValidationFailed
from distill.home import Home
from distill.runs.audit import AuditOptions, run_audit, write_audit_report
from distill.runs.release import release_freeze
from distill.schemas import AUDIT_GROUPS, AuditReport

FullOpt = Annotated[
    bool,
    typer.Option(
        "--full",
        help="Validate every line of every file (default: the first 1,000 lines of each file, "
        "then every 100th).",
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        help="The fixed task of the replay dry-run (default: the first accepted playbook's "
        "own instruction, which must retrieve it).",
        show_default=False,
    ),
]


@handles_errors
def audit_full_command(
    home: HomeOpt = None,
    full: FullOpt = False,
    drift_threshold: DriftOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    index_dir: IndexDirOpt = None,
    task: TaskOpt = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help=f"Leave a group out (repeatable): {', '.join(AUDIT_GROUPS)}. Skipped groups "
            "are reported as skipped.",
            show_default=False,
        ),
    ] = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Read-only checks over the home's data, index and reports, one group per stage.

    Appends the tracked metrics to data/_kb/audit_baselines.jsonl and reports their drift
    against the previous row; writes reports/distillation/audit-full-report.md (and .json).
    Never modifies a pipeline output. Exit code 1 when a required check fails.
    """
    resolved, config = resolve_home(home)
    options = _audit_options(resolved, drift_threshold, index_dir, embedder, seed)
    options = replace(options, full=full, task=task, skip=frozenset(skip or ()))
    with (
        home_writer(resolved, "audit-full", no_wait, sweep=False),
        err_console.status("audit-full…") as status,
    ):
        report = run_audit(
            resolved, config, options, on_group=lambda g: status.update(f"audit-full: {g}…")
        )
    path = write_audit_report(resolved, report)
    _print_audit(report)
    err_console.print(f"report: {resolved.relative(path)}", highlight=False)
    if as_json:
        print_json(report.model_dump(mode="json", by_alias=True))
    failed = [
        f"{c.group}: {c.name}: {c.detail}"
        for c in report.checks
        if c.level == "required" and not c.passed
    ]
    if failed:
        raise ValidationFailed(f"audit-full: {len(failed)} required check(s) failed", failed)


def _audit_options(
    home: Home, drift: float | None, index_dir: str | None, embedder: str | None, seed: int
) -> AuditOptions:
    """The drift threshold and the index, resolved as run-all resolves them."""
    index = index_at(home, index_dir, embedder, seed)
    return AuditOptions(
        threshold=settings.drift_threshold(drift, os.environ),
        index_uri=index.uri,
        embedder=index.embedder,
        seed=index.seed,
    )


def _print_audit(report: AuditReport) -> None:
    for check in report.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        if check.level == "info" and not check.passed:
            mark = "[yellow]info[/]"
        err_console.print(
            f"{mark} {check.group}: {escape(check.name)}: {escape(check.detail)}",
            highlight=False,
        )
    needed = [c for c in report.checks if c.level == "required"]
    drifted = [d.metric for d in report.drift if d.drifted]
    verdict = "[green]passed[/]" if report.passed else "[red]FAILED[/]"
    err_console.print(
        f"audit-full {verdict}: {sum(c.passed for c in needed)}/{len(needed)} required checks; "
        + (
            f"drift against the baseline of {report.baseline_created_at}: "
            f"{', '.join(drifted) or 'none'}"
            if report.baseline_created_at
            else "first baseline recorded"
        ),
        highlight=False,
    )


@handles_errors
def release_freeze_command(
    home: HomeOpt = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Release name, used for the tag (default: data-<first 12 of the run_hash>).",
            show_default=False,
        ),
    ] = None,
    drift_threshold: DriftOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    index_dir: IndexDirOpt = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rerun acceptance and audit-full, check the release gates, write the release manifest.

    Gates: acceptance passed, audit required checks passed, index in sync with the RAG export,
    the latest run's receipts valid, the working tree clean (when in git), no determinism alert
    in the latest drift. Writes reports/distillation/release-manifest.json and
    release-freeze.md, and prints the `git tag` command; it never tags by itself.
    Exit code 1 naming the failed gates.
    """
    resolved, config = resolve_home(home)
    options = _audit_options(resolved, drift_threshold, index_dir, embedder, seed)
    with (
        home_writer(resolved, "release-freeze", no_wait, sweep=False),
        err_console.status("release-freeze…") as status,
    ):
        result = release_freeze(
            resolved,
            config,
            options,
            version=name,
            on_step=lambda s: status.update(f"release-freeze: {s}…"),
        )
    for gate in result.gates:
        mark = "[green]pass[/]" if gate.passed else "[red]FAIL[/]"
        err_console.print(f"{mark} {escape(gate.name)}: {escape(gate.detail)}", highlight=False)
    err_console.print(f"report: {resolved.relative(result.report_path)}", highlight=False)
    if as_json:
        print_json(
            result.manifest.model_dump(mode="json", by_alias=True)
            if result.manifest
            else {"passed": False, "gates": [g.model_dump(mode="json") for g in result.gates]}
        )
    if result.manifest is None:
        failed = [f"{g.name}: {g.detail}" for g in result.gates if not g.passed]
        raise ValidationFailed("release refused: a gate failed", failed)
    assert result.manifest_path is not None
    err_console.print(
        f"release {result.manifest.version} frozen: {resolved.relative(result.manifest_path)}",
        highlight=False,
    )
    if result.manifest.tag_command:
        err_console.print("tag it (distill never tags by itself):", highlight=False)
        if not as_json:
            typer.echo(result.manifest.tag_command)
    else:
        err_console.print("the home is not in git: no tag command", highlight=False)
