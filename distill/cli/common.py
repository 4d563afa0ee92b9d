"""Shared CLI plumbing: options, error handling, printing. Only distill/cli imports typer."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distill.config import Config, format_validation_error, load_config
from distill.errors import ConfigError, DistillError, ValidationFailed
from distill.home import Home
from distill.secrets import scrub
from distill.sources.rows import normalise_time
from distill.stages import StageReport

err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Folder holding data/, exports/, reports/, index/. "
        "Default: $DISTILL_HOME, else the current directory.",
        show_default=False,
    ),
]
RecordedAtOpt = Annotated[
    str | None,
    typer.Option(
        "--recorded-at",
        help="ISO-8601 time stamped on every record; pin it to make "
        "a run reproducible byte for byte. Default: now.",
        show_default=False,
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Compute and report; write nothing.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the machine result as JSON on stdout.")
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name on the server.")]
ModelUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--model-url",
        help="OpenAI-compatible server for the local model "
        "(else $DISTILL_MODEL_URL, else the embedded GGUF).",
    ),
]
PromptStyleOpt = Annotated[
    str | None,
    typer.Option("--prompt-style", help="chat or completion (default: from the model)."),
]
RepoRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--repo-root",
        help="Check that cited file paths exist under this folder "
        "(hallucinated_file_path). Without it the check is reported as skipped.",
        exists=True,
        file_okay=False,
        show_default=False,
    ),
]


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Expected failures: one line, a hint, exit code 1. DISTILL_DEBUG=1 shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DistillError as err:
            if os.environ.get("DISTILL_DEBUG") == "1":
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
            for line in getattr(err, "errors", [])[:10]:
                err_console.print(f"  - {escape(line)}", highlight=False)
            if err.hint:
                err_console.print(f"[yellow]hint:[/] {escape(err.hint)}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as err:
            if os.environ.get("DISTILL_DEBUG") == "1":
                raise
            err_console.print(f"[bold red]error:[/] {escape(format_validation_error(err))}")
            raise typer.Exit(1) from None

    return wrapper


def resolve_home(flag: Path | None) -> tuple[Home, Config]:
    home = Home.resolve(flag)
    return home, load_config(home.config_path)


def resolve_recorded_at(value: str | None) -> str:
    if value is None:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    normalised = normalise_time(value)
    if normalised is None:
        raise ConfigError(
            f"--recorded-at {value!r} is not ISO-8601",
            hint="use e.g. --recorded-at 2026-01-01T00:00:00Z",
        )
    return normalised


def print_json(payload: Any) -> None:
    """``payload`` as indented JSON on stdout, with every configured secret redacted."""
    text = orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
    sys.stdout.write(scrub(text.decode()) + "\n")


def print_report(report: StageReport) -> None:
    """The human summary of a stage, on stderr."""
    verdict = "[green]ok[/]" if report.passed else "[red]FAILED[/]"
    dry = " (dry run: nothing written)" if report.dry_run else ""
    err_console.print(
        f"[bold]{report.stage}[/] {verdict}{dry}: in {report.records_in}, "
        f"out {report.records_out}, skipped {report.skipped_total}, "
        f"quarantined {report.quarantined_total}",
        highlight=False,
    )
    for label, counts in (
        ("skipped", report.skipped),
        ("quarantined", report.quarantined),
        ("out", report.out_by_category),
    ):
        if counts:
            parts = ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))
            err_console.print(f"  {label}: {parts}", highlight=False)
    for name, state in sorted(report.checks.items()):
        if state != "passed":
            err_console.print(f"  check {name}: {state}", highlight=False)
    for warning in report.warnings:
        err_console.print(f"  [yellow]warning:[/] {escape(warning)}", highlight=False)
    for error in report.errors:
        err_console.print(f"  [red]error:[/] {escape(error)}", highlight=False)


def finish(reports: list[StageReport], as_json: bool) -> None:
    for report in reports:
        print_report(report)
    if as_json:
        payload = [r.to_dict() for r in reports]
        print_json(payload[0] if len(payload) == 1 else payload)
    failed = [r for r in reports if not r.passed]
    if failed:
        raise ValidationFailed(f"stage {failed[0].stage} failed", failed[0].errors)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*row)
    return out
