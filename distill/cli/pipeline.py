"""Top-level pipeline verbs: recon, collect, score."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from distill.cli.common import (
    DryRunOpt,
    EngineOpt,
    HomeOpt,
    JsonOpt,
    NoWaitOpt,
    RayAddressOpt,
    RecordedAtOpt,
    engine_for,
    err_console,
    finish,
    handles_errors,
    home_writer,
    print_json,
    resolve_home,
    resolve_recorded_at,
    table,
)
from distill.engine import EngineName
from distill.recon import recon
from distill.stages.registry import StageContext, stage_named


@handles_errors
def recon_command(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List the sources a home reads: format, files, units, bad units, what will need review."""
    resolved, config = resolve_home(home)
    results = recon(resolved, config)
    if as_json:
        print_json([info.to_dict() for info in results])
        return
    if not results:
        err_console.print(f"no sources with files under {resolved.root}")
        return
    rows = []
    for info in results:
        data = info.to_dict()
        coverage = data["field_coverage"]
        low = [f"{k} {v:.0%}" for k, v in coverage.items() if v < 1.0][:4]
        rows.append(
            [
                info.stream + ("" if info.adapter else " (no adapter)"),
                info.format,
                str(info.files),
                str(info.rows),
                str(data["bad_rows"]),
                f"{data['missing_provenance_rate']:.1%}",
                str(info.needs_review),
                ", ".join(low) or "all fields always set",
            ]
        )
    Console().print(
        table(
            f"sources under {resolved.root}",
            [
                "source",
                "format",
                "files",
                "units",
                "bad",
                "missing provenance",
                "review",
                "partial fields",
            ],
            rows,
        )
    )
    for info in results:
        for note in info.notes:
            err_console.print(f"[yellow]{escape(info.stream)}:[/] {escape(note)}", highlight=False)


@handles_errors
def collect_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Read every stream in data/_kb/ into data/evidence/; bad lines go to the skips file."""
    _run_stage(
        "collect",
        home,
        recorded_at,
        (engine, ray_address),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )


@handles_errors
def score_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Score the evidence into data/scored-runs/ with each stream's deterministic rule."""
    _run_stage(
        "score",
        home,
        recorded_at,
        (engine, ray_address),
        dry_run=dry_run,
        no_wait=no_wait,
        as_json=as_json,
    )


def _run_stage(
    name: str,
    home: Path | None,
    recorded_at: str | None,
    engine: tuple[EngineName, str | None],
    *,
    dry_run: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """One stage of the registry, under the home's writer lock (none for a dry run)."""
    resolved, config = resolve_home(home)
    stamp = resolve_recorded_at(recorded_at)
    with (
        home_writer(resolved, name, no_wait, dry_run=dry_run),
        engine_for(*engine) as chosen,
        err_console.status(f"{name}…") as status,
    ):
        context = StageContext(
            resolved, config, stamp, dry_run=dry_run, progress=status.update, engine=chosen
        )
        report = stage_named(name).run(context)
    finish([report], as_json)
