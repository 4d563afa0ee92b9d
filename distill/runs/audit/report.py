"""The audit's baselines (audit_baselines.jsonl), metric drift and Markdown report."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from distill.home import Home
from distill.jsonio import iter_json_objects, write_bytes_atomic
from distill.runs.audit.context import BASELINES_FILE, OWN_LINE_LIMIT
from distill.runs.summary import md_cell
from distill.schemas import AuditBaseline, AuditReport, MetricDrift

REPORT_NAME = "audit-full-report"
__all__ = ["BASELINES_FILE", "REPORT_NAME"]


def last_baseline(home: Home) -> AuditBaseline | None:
    """What the next audit compares against: for each metric, its value in the newest row that
    measured it (a partial audit, run with --skip, does not hide the others). Dated by the newest
    row. Invalid rows are skipped here; the schema check names them."""
    path = home.kb_dir / BASELINES_FILE
    latest: AuditBaseline | None = None
    merged: dict[str, float] = {}
    if path.is_file():
        for _, row in iter_json_objects(path, OWN_LINE_LIMIT):
            try:
                latest = AuditBaseline.model_validate(row)
            except ValidationError:
                continue
            merged.update(latest.metrics)
    return latest.model_copy(update={"metrics": merged}) if latest else None


def metric_drift(
    baseline: dict[str, float] | None, current: dict[str, float], threshold: float
) -> list[MetricDrift]:
    """Relative change per metric measured now, as run-all's drift measures it:
    (now - then) / max(|then|, 1). A metric no baseline has is listed as new, not as drift."""
    if baseline is None:
        return []
    rows = []
    for metric, now in sorted(current.items()):
        then = baseline.get(metric)
        if then is None:
            rows.append(
                MetricDrift(metric=metric, baseline=None, current=now, change=None, drifted=False)
            )
            continue
        change = (now - then) / max(abs(then), 1.0)
        rows.append(
            MetricDrift(
                metric=metric,
                baseline=then,
                current=now,
                change=round(change, 4),
                drifted=abs(change) > threshold,
            )
        )
    return rows


def write_audit_report(home: Home, report: AuditReport) -> Path:
    folder = home.reports_dir
    json_bytes = report.model_dump_json(by_alias=True, indent=2).encode()
    write_bytes_atomic(folder / f"{REPORT_NAME}.json", json_bytes + b"\n")
    path = folder / f"{REPORT_NAME}.md"
    write_bytes_atomic(path, render_audit_md(report).encode())
    return path


def render_audit_md(report: AuditReport) -> str:
    needed = [c for c in report.checks if c.level == "required"]
    infos = [c for c in report.checks if c.level == "info"]
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        "# distill audit-full",
        "",
        f"**{verdict}**: {sum(c.passed for c in needed)}/{len(needed)} required checks pass; "
        f"{sum(c.passed for c in infos)}/{len(infos)} info checks pass.",
        "",
        f"- latest run: `{report.run_id or 'none'}`",
        f"- schemas: {'every line validated (--full)' if report.full else 'sampled'}",
        f"- audited at {report.created_at}",
        "",
        "## Checks",
        "",
        "| group | check | level | result | detail |",
        "|---|---|---|---|---|",
    ]
    for c in report.checks:
        result = "pass" if c.passed else ("**FAIL**" if c.level == "required" else "no")
        lines.append(
            f"| {c.group} | {md_cell(c.name)} | {c.level} | {result} | {md_cell(c.detail)} |"
        )
    lines += ["", "## Metrics against the baseline", ""]
    if report.baseline_created_at is None:
        lines.append("First audit of this home: no baseline yet; these metrics become it.")
        lines += ["", "| metric | now |", "|---|---|"]
        lines += [f"| {m} | {_num(v)} |" for m, v in report.metrics.items()]
    else:
        drifted = sum(d.drifted for d in report.drift)
        lines.append(
            f"Baseline from {report.baseline_created_at}; threshold {report.threshold:.0%}; "
            f"{drifted} metric(s) drifted."
        )
        lines += ["", "| metric | baseline | now | change | drift |", "|---|---|---|---|---|"]
        for d in report.drift:
            change = "new" if d.change is None else f"{d.change:+.1%}"
            lines.append(
                f"| {d.metric} | {_num(d.baseline)} | {_num(d.current)} | {change} | "
                f"{'**drift**' if d.drifted else ''} |"
            )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"
