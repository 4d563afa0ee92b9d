"""The typer app. Commands are thin: parse flags, call one library function, print."""

from __future__ import annotations

import typer

from distill import __version__
from distill.cli import (
    doctor,
    eval_replay,
    export,
    gates,
    index,
    mcp,
    pipeline,
    replay,
    runs,
    serve,
)
from distill.cli import eval as eval_cli

app = typer.Typer(
    name="distill",
    no_args_is_help=True,
    add_completion=True,
    help="Turn agent logs into provenance-carrying datasets. State lives in --home "
    "(else $DISTILL_HOME, else the current directory).",
)
app.command("recon")(pipeline.recon_command)
app.command("collect")(pipeline.collect_command)
app.command("score")(pipeline.score_command)
app.add_typer(export.app, name="export")
app.add_typer(index.app, name="index")
app.command("replay")(replay.replay_command)
app.command("serve")(serve.serve_command)
app.command("mcp")(mcp.mcp_command)
app.add_typer(eval_cli.app, name="eval")
eval_cli.app.command("replay")(eval_replay.eval_replay_command)
app.command("run-all")(runs.run_all_command)
app.add_typer(runs.receipts_app, name="receipts")
app.command("acceptance")(runs.acceptance_command)
app.command("audit-full")(gates.audit_full_command)
app.command("release-freeze")(gates.release_freeze_command)
app.command("doctor")(doctor.doctor_command)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and the code hash receipts carry, and exit."
    ),
) -> None:
    if version:
        from distill.runs.receipts import code_hash

        typer.echo(f"distill {__version__} (code {code_hash()})")
        raise typer.Exit()


def main() -> None:
    app()


__all__ = ["app", "main"]
