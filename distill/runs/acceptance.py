"""distill acceptance: the whole pipeline twice on the acceptance fixture, and named invariants.

Every invariant reads the files the runs wrote, never the stages' own reports, so a stage that
lies about what it did is caught. Later subsystems (index, replay) add their invariants here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import distill
from distill.config import load_config
from distill.home import Home
from distill.jsonio import write_bytes_atomic
from distill.runs.checks import CheckResult, file_checks, index_checks, replay_checks
from distill.runs.expected import FixtureExpectations, load_expectations
from distill.runs.fixture_checks import dataset_checks
from distill.runs.runner import RunOptions, RunResult, run_all
from distill.runs.summary import md_cell

ACCEPTANCE_RECORDED_AT = "2026-01-01T00:00:00Z"
ACCEPTANCE_EMBEDDER = "hash-384"  # the seeded embedder: identical vectors on every machine
KNOWN_QUERY_ID = "scrum_reviews:SR-0001"  # its own instruction must retrieve it first
KNOWN_TASK = "add a discount code to the cart checkout"
DEFAULT_FIXTURE = Path(distill.__file__).resolve().parent / "fixtures" / "acceptance"


@dataclass
class AcceptanceRun:
    home: Home
    result: RunResult


@dataclass
class AcceptanceReport:
    checks: list[CheckResult]
    homes: list[Path]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "homes": [str(h) for h in self.homes],
            "checks": [check.to_dict() for check in self.checks],
        }

    def markdown(self) -> str:
        lines = [
            "# distill acceptance",
            "",
            f"**{'PASSED' if self.passed else 'FAILED'}**: "
            f"{sum(c.passed for c in self.checks)}/{len(self.checks)} invariants hold.",
            "",
            "| invariant | result | detail |",
            "|---|---|---|",
        ]
        for check in self.checks:
            detail = md_cell(check.detail)
            lines.append(f"| {check.name} | {'pass' if check.passed else 'FAIL'} | {detail} |")
        return "\n".join(lines) + "\n"


def run_acceptance(
    fixture: Path = DEFAULT_FIXTURE,
    *,
    workdir: Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> AcceptanceReport:
    """Copy the fixture into two homes, run-all in each with the same recorded_at, check."""
    if not (fixture / "data" / "_kb").is_dir():
        from distill.errors import InputMissingError

        raise InputMissingError(
            f"{fixture} has no data/_kb/",
            hint="pass --fixture DIR pointing at an acceptance fixture",
        )
    expected = load_expectations(fixture)
    base = Path(tempfile.mkdtemp(prefix="distill-acceptance-", dir=workdir))
    runs: list[AcceptanceRun] = []
    for index in (1, 2):
        home = Home((base / f"run{index}").resolve())
        shutil.copytree(fixture, home.root)
        if runs:  # the second run sees the first as its previous run: its drift must be "ok"
            shutil.copytree(runs[0].home.reports_dir, home.reports_dir)
        options = RunOptions(
            recorded_at=ACCEPTANCE_RECORDED_AT, repo_root=_repo(home), embedder=ACCEPTANCE_EMBEDDER
        )
        result = run_all(home, load_config(home.config_path), options, on_stage=on_stage)
        runs.append(AcceptanceRun(home, result))
    checks = list(_all_checks(runs, expected))
    return AcceptanceReport(checks=checks, homes=[run.home.root for run in runs])


def write_acceptance_report(home: Home, report: AcceptanceReport) -> Path:
    path = home.reports_dir / "acceptance-report.md"
    write_bytes_atomic(path, report.markdown().encode())
    return path


def _repo(home: Home) -> Path | None:
    repo = home.root / "repo"
    return repo if repo.is_dir() else None


def _all_checks(
    runs: list[AcceptanceRun], expected: FixtureExpectations | None
) -> Iterator[CheckResult]:
    first, second = runs
    for run in runs:
        label = run.home.root.name
        summary = run.result.summary
        yield CheckResult(
            f"{label}: run-all passed",
            summary.passed,
            "all stages passed"
            if summary.passed
            else f"failed at {summary.failed_stage}: "
            f"{next((r.reason for r in summary.stages if r.reason), '')}",
        )
        yield from (check.prefixed(label) for check in file_checks(run.home, run.result.folder))
    yield from dataset_checks(first.home, expected)
    yield from index_checks(first.home, KNOWN_QUERY_ID)
    yield from replay_checks(first.home, KNOWN_TASK)
    yield from _cross_run_checks(first.result, second.result)


def _cross_run_checks(a: RunResult, b: RunResult) -> Iterator[CheckResult]:
    hashes_a = {r.stage: r.output_hash for r in a.summary.stages}
    hashes_b = {r.stage: r.output_hash for r in b.summary.stages}
    differing = sorted(stage for stage in hashes_a if hashes_a[stage] != hashes_b.get(stage))
    yield CheckResult(
        "per-stage output hashes identical across runs",
        not differing,
        f"differ: {', '.join(differing)}" if differing else f"{len(hashes_a)} stages identical",
    )
    same = a.summary.run_hash is not None and a.summary.run_hash == b.summary.run_hash
    yield CheckResult(
        "run_hash identical across runs", same, f"{a.summary.run_hash} vs {b.summary.run_hash}"
    )
    yield CheckResult(
        "second run's drift is ok", b.drift.level == "ok", f"{b.drift.level}: {b.drift.message}"
    )
