"""Runs: run-all with receipts, summaries and drift; the acceptance gate."""

from distill.runs.drift import compare_runs
from distill.runs.preview import RunPreview, preview_all
from distill.runs.runner import (
    RunOptions,
    RunResult,
    find_run,
    latest_summary,
    load_summary,
    run_all,
    stage_context,
)

__all__ = [
    "RunOptions",
    "RunPreview",
    "RunResult",
    "compare_runs",
    "find_run",
    "latest_summary",
    "load_summary",
    "preview_all",
    "run_all",
    "stage_context",
]
