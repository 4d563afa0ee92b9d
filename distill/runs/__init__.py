"""Runs: run-all with receipts, summaries and drift; the acceptance gate."""

from distill.runs.drift import compare_runs, resolve_threshold
from distill.runs.runner import (
    RunOptions,
    RunResult,
    find_run,
    latest_summary,
    load_summary,
    pipeline_stages,
    run_all,
)

__all__ = [
    "RunOptions",
    "RunResult",
    "compare_runs",
    "find_run",
    "latest_summary",
    "load_summary",
    "pipeline_stages",
    "resolve_threshold",
    "run_all",
]
