"""distill doctor: check the install and the home, one line per check with its fix."""

from __future__ import annotations

import os

import typer

from distill.cli.common import HomeOpt, JsonOpt, err_console, handles_errors, print_json
from distill.doctor import DoctorCheck, run_doctor
from distill.secrets import scrub
from distill.settings import resolve_home

_COLOUR = {"pass": "green", "warn": "yellow", "fail": "red"}


@handles_errors
def doctor_command(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Check what an install needs: Python, torch, llama-cpp-python, the model file, the
    embedder, the home, the index, the writer lock, free disk and the model endpoints.

    Each line is pass, warn or fail, with the fix. Exit code 1 when anything fails. Keys are
    never printed.
    """

    def show(check: DoctorCheck) -> None:
        if as_json:
            return
        mark = typer.style(f"{check.status:<4}", fg=_COLOUR[check.status], bold=True)
        typer.echo(f"{mark}  {check.name:<20} {scrub(check.detail)}")
        if check.fix and check.status != "pass":
            typer.echo(f"      {'':<20} fix: {scrub(check.fix)}")

    report = run_doctor(resolve_home(home, os.environ), os.environ, on_check=show)
    if as_json:
        print_json(report.to_dict())
    else:
        failures = sum(check.status == "fail" for check in report.checks)
        warnings = sum(check.status == "warn" for check in report.checks)
        err_console.print(f"{failures} failed, {warnings} warnings, {len(report.checks)} checks")
    if not report.ok:
        raise typer.Exit(1)
