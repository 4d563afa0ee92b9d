"""audit-full: read-only checks over a home, tracked metrics, drift against the last baseline.

It writes three things only, none of them a pipeline output: one line appended to
``data/_kb/audit_baselines.jsonl`` and ``reports/distillation/audit-full-report.{md,json}``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from distill.clock import utc_now
from distill.config import Config
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import append_line_locked, model_line
from distill.runs.acceptance import AcceptanceReport, run_acceptance
from distill.runs.audit.context import AuditContext, info, required
from distill.runs.audit.data_checks import (
    evidence_checks,
    export_checks,
    recon_checks,
    schema_checks,
    scoring_checks,
)
from distill.runs.audit.report import (
    BASELINES_FILE,
    REPORT_NAME,
    last_baseline,
    metric_drift,
    render_audit_md,
    write_audit_report,
)
from distill.runs.audit.state_checks import (
    acceptance_checks,
    index_audit_checks,
    receipt_checks,
    replay_audit_checks,
)
from distill.runs.checks import CheckResult
from distill.runs.receipts import git_sha
from distill.runs.runner import find_run, load_summary, run_folders
from distill.schemas import AUDIT_GROUPS, AuditBaseline, AuditCheck, AuditReport

Group = Callable[[AuditContext], Iterator[AuditCheck]]


@dataclass(frozen=True)
class AuditOptions:
    full: bool = False
    threshold: float = 0.2
    index_uri: str | None = None
    embedder: str | None = None  # None: minilm, as in run-all
    seed: int = 0
    task: str | None = None
    skip: frozenset[str] = frozenset()


def run_audit(
    home: Home,
    config: Config,
    options: AuditOptions,
    *,
    acceptance: Callable[[], AcceptanceReport] | None = None,
    on_group: Callable[[str], None] | None = None,
) -> AuditReport:
    """Run every group not skipped, measure the metrics, compare them with the last baseline."""
    unknown = options.skip - set(AUDIT_GROUPS)
    if unknown:
        raise DistillError(
            f"unknown audit group(s): {', '.join(sorted(unknown))}",
            hint=f"groups: {', '.join(AUDIT_GROUPS)}",
        )
    ctx = _context(home, config, options)
    groups: dict[str, Group] = {
        "recon": recon_checks,
        "schemas": schema_checks,
        "evidence": evidence_checks,
        "scoring": scoring_checks,
        "exports": export_checks,
        "receipts": receipt_checks,
        "acceptance": lambda _: acceptance_checks(acceptance or acceptance_in_tmp),
        "index": index_audit_checks,
        "replay": replay_audit_checks,
    }
    checks: list[AuditCheck] = []
    for name in AUDIT_GROUPS:
        if name in options.skip:
            checks.append(info(name, CheckResult(f"{name} checks", False, "skipped (--skip)")))
            continue
        if on_group is not None:
            on_group(name)
        try:
            checks.extend(groups[name](ctx))
        except Exception as err:  # noqa: BLE001 - a broken home must still get its report
            if os.environ.get("DISTILL_DEBUG") == "1":
                raise
            why = str(err) if isinstance(err, DistillError) else f"{type(err).__name__}: {err}"
            # the checks it finished stay; the rest of the group is this one failed check
            checks.append(required(name, CheckResult(f"{name} checks ran", False, why)))
    previous = last_baseline(home)
    now = utc_now()
    metrics = dict(sorted(ctx.metrics.items()))
    report = AuditReport(
        created_at=now,
        run_id=ctx.summary.run_id if ctx.summary else None,
        passed=all(c.passed for c in checks if c.level == "required"),
        full=options.full,
        checks=checks,
        metrics=metrics,
        threshold=options.threshold,
        baseline_created_at=previous.created_at if previous else None,
        drift=metric_drift(previous.metrics if previous else None, metrics, options.threshold),
    )
    baseline = AuditBaseline(
        created_at=now,
        run_id=report.run_id,
        git_sha=git_sha(home.root),
        metrics=metrics,
    )
    append_line_locked(home.kb_dir / BASELINES_FILE, model_line(baseline))
    return report


def acceptance_in_tmp() -> AcceptanceReport:
    """The acceptance gate in temporary homes that are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="distill-audit-") as workdir:
        return run_acceptance(workdir=Path(workdir))


def _context(home: Home, config: Config, options: AuditOptions) -> AuditContext:
    # imported when called: only what reads the index loads it, so other commands start faster
    from distill.index import make_embedder
    from distill.index.store import resolve_index_uri

    ctx = AuditContext(
        home=home,
        config=config,
        full=options.full,
        index_uri=resolve_index_uri(options.index_uri, home.index_dir),
        make_embedder=lambda: make_embedder(options.embedder, seed=options.seed),
        task=options.task,
    )
    if run_folders(home):
        try:
            ctx.run_folder = find_run(home, None)
            ctx.summary = load_summary(ctx.run_folder)
        except DistillError as err:
            ctx.summary_error = str(err)
    else:
        ctx.summary_error = f"no run under {home.relative(home.reports_dir)}: run `distill run-all`"
    return ctx


__all__ = [
    "REPORT_NAME",
    "AuditOptions",
    "acceptance_in_tmp",
    "last_baseline",
    "metric_drift",
    "render_audit_md",
    "run_audit",
    "write_audit_report",
]
