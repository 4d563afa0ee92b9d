"""Top-level pipeline verbs: recon, collect, score."""

from __future__ import annotations

from rich.console import Console

from distill.cli.common import (
    DryRunOpt,
    HomeOpt,
    JsonOpt,
    NoWaitOpt,
    RecordedAtOpt,
    err_console,
    finish,
    handles_errors,
    home_writer,
    print_json,
    resolve_home,
    resolve_recorded_at,
    table,
)
from distill.recon import recon
from distill.stages import collect, score


@handles_errors
def recon_command(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List the source streams under the home: rows, bad rows, field coverage, provenance gaps."""
    resolved, config = resolve_home(home)
    results = recon(resolved, config)
    if as_json:
        print_json([info.to_dict() for info in results])
        return
    if not results:
        err_console.print(f"no streams under {resolved.kb_dir}")
        return
    rows = []
    for info in results:
        data = info.to_dict()
        coverage = data["field_coverage"]
        low = [f"{k} {v:.0%}" for k, v in coverage.items() if v < 1.0][:4]
        rows.append(
            [
                info.stream + ("" if info.adapter else " (no adapter)"),
                str(info.rows),
                str(data["bad_rows"]),
                f"{data['missing_provenance_rate']:.1%}",
                str(len(coverage)),
                ", ".join(low) or "all fields always set",
            ]
        )
    Console().print(
        table(
            f"streams under {resolved.kb_dir}",
            ["stream", "rows", "bad rows", "missing provenance", "fields", "partial fields"],
            rows,
        )
    )


@handles_errors
def collect_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Read every stream in data/_kb/ into data/evidence/; bad lines go to the skips file."""
    resolved, config = resolve_home(home)
    stamp = resolve_recorded_at(recorded_at)
    with (
        home_writer(resolved, "collect", no_wait, dry_run=dry_run),
        err_console.status("collecting…") as status,
    ):
        report = collect(
            resolved,
            config,
            recorded_at=stamp,
            dry_run=dry_run,
            progress=lambda stream, n: status.update(f"collecting {stream}: {n:,}"),
        )
    finish([report], as_json)


@handles_errors
def score_command(
    home: HomeOpt = None,
    recorded_at: RecordedAtOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Score the evidence into data/scored-runs/ with each stream's deterministic rule."""
    resolved, config = resolve_home(home)
    with home_writer(resolved, "score", no_wait, dry_run=dry_run), err_console.status("scoring…"):
        report = score(
            resolved, config, recorded_at=resolve_recorded_at(recorded_at), dry_run=dry_run
        )
    finish([report], as_json)
