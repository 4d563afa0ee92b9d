"""Shared CLI plumbing: options, error handling, printing. Only distill/cli imports typer."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distill import settings
from distill.clock import utc_now
from distill.config import Config, load_config
from distill.engine import Engine, EngineName, open_engine
from distill.errors import (
    ConfigError,
    DistillError,
    ValidationFailed,
    format_validation_error,
    os_error,
)
from distill.home import Home
from distill.index.search import DEFAULT_FUSION, Fusion, Mode
from distill.lock import LockOwner, writer_lock
from distill.secrets import scrub
from distill.settings import IndexSettings
from distill.sources.rows import normalise_time
from distill.stage_report import StageReport

err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


class SearchMode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    fts = "fts"


class FusionChoice(StrEnum):
    rrf = "rrf"
    weighted = "weighted"


class PromptStyleChoice(StrEnum):
    chat = "chat"
    completion = "completion"


SEARCH_MODES: dict[SearchMode, Mode] = {
    SearchMode.hybrid: "hybrid",
    SearchMode.vector: "vector",
    SearchMode.fts: "fts",
}
FUSIONS: dict[FusionChoice, Fusion] = {FusionChoice.rrf: "rrf", FusionChoice.weighted: "weighted"}
DEFAULT_FUSION_CHOICE = FusionChoice(DEFAULT_FUSION)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=settings.HOME,
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
NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Fail at once when another distill command is writing this home "
        "(default: wait for it).",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Compute and report; write nothing.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the machine result as JSON on stdout.")
]
IndexDirOpt = Annotated[
    str | None,
    typer.Option(
        "--index-dir",
        envvar=settings.INDEX_URI,
        help="The index (a LanceDB database): a folder or s3://bucket/prefix. Default: "
        "$DISTILL_INDEX_URI, else <home>/index.",
        show_default=False,
    ),
]
EmbedderOpt = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        envvar=settings.EMBEDDER,
        help="minilm-onnx-int8 (all-MiniLM-L6-v2 on ONNX Runtime, int8), minilm-onnx (fp32), "
        "minilm (on torch) or hash-<dim> (seeded, no model). Default: $DISTILL_EMBEDDER, else "
        "minilm-onnx-int8; a model folder in $DISTILL_EMBED_MODEL replaces it and minilm.",
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the hashing embedder.")]
DriftOpt = Annotated[
    float | None,
    typer.Option(
        "--drift-threshold",
        envvar=settings.DRIFT_THRESHOLD,
        help="Relative change that counts as drift (default: $DISTILL_DRIFT_THRESHOLD, else 0.2).",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    EngineName,
    typer.Option(
        "--engine",
        help="Where the per-row work runs: local (this process, the default) or ray (Ray Data "
        "tasks on --ray-address; pip install 'distill[ray]'). Both write the same bytes.",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="The Ray cluster of --engine ray (host:6379, or ray://host:10001). Default: "
        "$RAY_ADDRESS, else a local Ray started for the command with every CPU here.",
        show_default=False,
    ),
]
IncludeReviewOpt = Annotated[
    bool, typer.Option("--include-review", help="RAG: also export needs_human_review runs.")
]
IncludePartialOpt = Annotated[
    bool, typer.Option("--include-partial", help="SFT: also export partially_accepted runs.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar=settings.MODEL,
        help="Model name on the server (else $DISTILL_MODEL, else [local] model in "
        "models/models.toml).",
        show_default=False,
    ),
]
ModelUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--model-url",
        envvar=settings.MODEL_URL,
        help="OpenAI-compatible server for the local model (else $DISTILL_MODEL_URL, else "
        "[local] url in models/models.toml, else the embedded GGUF).",
        show_default=False,
    ),
]
PromptStyleOpt = Annotated[
    PromptStyleChoice | None,
    typer.Option(
        "--prompt-style",
        help="How the model is prompted (default: [local] prompt_style in models/models.toml, else "
        "from the model).",
        show_default=False,
    ),
]
MinRelevanceOpt = Annotated[
    float | None,
    typer.Option(
        "--min-relevance",
        help="Relevance (0-1: query cosine and BM25 combined) a retrieved playbook needs to "
        "count for the task; when none has it, no model is called and the run abstains "
        "(else [replay] min_relevance in models/models.toml, else the calibrated default).",
        show_default=False,
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        envvar=settings.REPLAY_DEADLINE,
        help="Seconds the model calls of one replay may take in all, retries and escalation "
        "included (else $DISTILL_REPLAY_DEADLINE, else 180).",
        show_default=False,
    ),
]
RepoRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--repo-root",
        help="Check that cited file paths exist under this folder "
        "(hallucinated_file_path): one checkout (it holds .git), or a folder of checkouts, "
        "picked per row by its repo field: OWNER__NAME, OWNER/NAME, then NAME. "
        "Without it the check is reported as skipped.",
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
            try:
                return func(*args, **kwargs)
            except OSError as err:
                raise os_error(err) from err
            except RuntimeError as err:
                if "symlink loop" not in str(err).lower():
                    raise
                raise os_error(err) from err
        except DistillError as err:
            if os.environ.get(settings.DEBUG) == "1":
                raise
            _print_error(err)
            raise typer.Exit(1) from None
        except ValidationError as err:
            if os.environ.get(settings.DEBUG) == "1":
                raise
            err_console.print(f"[bold red]error:[/] {escape(format_validation_error(err))}")
            raise typer.Exit(1) from None

    return wrapper


def _print_error(err: DistillError) -> None:
    """One line for the error, one for each detail, one for the hint: never wrapped."""
    message = escape(scrub(str(err)))
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    for line in getattr(err, "errors", [])[:10]:
        err_console.print(f"  - {escape(scrub(line))}", highlight=False, soft_wrap=True)
    if err.hint:
        err_console.print(
            f"[yellow]hint:[/] {escape(scrub(err.hint))}", highlight=False, soft_wrap=True
        )


@contextlib.contextmanager
def home_writer(
    home: Home, command: str, no_wait: bool, *, dry_run: bool = False, sweep: bool = True
) -> Iterator[None]:
    """Hold the home's writer lock for a writing command; say whom we wait for.

    A dry run writes nothing, so it reads like any reader: without the lock.
    """
    if dry_run:
        yield
        return

    def waiting(owner: LockOwner | None) -> None:
        who = owner.describe() if owner else "another process"
        err_console.print(
            f"waiting for {who} to finish writing {home.root} (--no-wait fails instead)",
            highlight=False,
        )

    with writer_lock(
        home, command, wait=not no_wait, on_wait=waiting, sweep_leftovers=sweep
    ) as removed:
        if removed:
            err_console.print(
                f"removed {len(removed)} leftover(s) of an interrupted run "
                f"(e.g. {home.relative(removed[0])})",
                highlight=False,
            )
        yield


@contextlib.contextmanager
def engine_for(name: EngineName, address: str | None) -> Iterator[Engine]:
    """The engine of ``--engine``; for Ray, say where it runs (starting one takes seconds)."""
    if name is EngineName.ray:
        where = address or "a local Ray (started for this command)"
        err_console.print(f"engine: ray on {where}", highlight=False)
    with open_engine(name, address) as engine:
        yield engine


def resolve_home(flag: Path | None) -> tuple[Home, Config]:
    """The home (``--home`` > ``$DISTILL_HOME`` > the current directory) and its distill.toml."""
    home = settings.resolve_home(flag, os.environ)
    return home, load_config(home.config_path)


def index_at(
    home: Home, index_dir: str | None, embedder: str | None = None, seed: int = 0
) -> IndexSettings:
    """The index settings from the flags and the environment (``distill.settings``)."""
    return settings.index_settings(
        home, os.environ, index_dir=index_dir, embedder=embedder, seed=seed
    )


def resolve_recorded_at(value: str | None) -> str:
    if value is None:
        return utc_now()
    normalised = normalise_time(value)
    if normalised is None:
        raise ConfigError(
            f"--recorded-at {value!r} is not ISO-8601",
            hint="use e.g. --recorded-at 2026-01-01T00:00:00Z",
        )
    return normalised


def print_json(payload: Any, *, one_line: bool = False) -> None:
    """``payload`` as JSON on stdout (indented, or ``one_line`` for a reader that waits on a
    line, such as a supervisor reading ``serve --json``), with every configured secret redacted."""
    option = orjson.OPT_SORT_KEYS | (0 if one_line else orjson.OPT_INDENT_2)
    text = orjson.dumps(payload, option=option, default=str)
    sys.stdout.write(scrub(text.decode()) + "\n")
    sys.stdout.flush()


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
