"""summary.md: the run as a person reads it."""

from __future__ import annotations

from distill.schemas import DriftReport, RunSummary, StageReceipt


def md_cell(text: str) -> str:
    """``text`` safe inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def run_warnings(stages: list[StageReceipt]) -> list[str]:
    """What a run that passed must still say: an index that ended empty, and why."""
    index = next((r for r in stages if r.stage == "index" and r.status == "passed"), None)
    if index is None or index.counts is None or index.counts.records_out:
        return []
    scored = next((r.counts for r in stages if r.stage == "score" and r.counts), None)
    by_category = dict(scored.out_by_category) if scored else {}
    shown = ", ".join(f"{n} {c}" for c, n in sorted(by_category.items())) or "nothing scored"
    return [
        f"the index is empty: the RAG export has 0 rows (scored: {shown}); "
        "give the sources a verdict (`verdicts = …` in distill.toml, see `distill recon`) "
        "or pass --include-review"
    ]


def render_summary_md(summary: RunSummary, drift: DriftReport) -> str:
    verdict = "PASSED" if summary.passed else f"FAILED at {summary.failed_stage}"
    if summary.warnings:
        verdict += f" with {len(summary.warnings)} warning(s)"
    lines = [
        f"# distill run {summary.run_id}",
        "",
        f"- result: **{verdict}**",
        f"- recorded_at: `{summary.recorded_at}`",
        f"- git sha: `{summary.git_sha or 'not a git work tree'}`",
        f"- run_hash: `{summary.run_hash or 'n/a (run failed)'}`",
        f"- drift: **{drift.level}**: {drift.message}",
        "",
        "## Datasets",
        "",
        "| dataset | path | records | sha256 |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| {d.name} | `{d.path}` | {d.records} | `{d.sha256[:16]}…` |" for d in summary.datasets
    ]
    lines += [
        "",
        "## Stages",
        "",
        "| stage | status | in | out | skipped | quarantined | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for receipt in summary.stages:
        counts = receipt.counts
        cells = (
            ["", "", "", ""]
            if counts is None
            else [
                str(counts.records_in),
                str(counts.records_out),
                str(sum(counts.skipped.values())),
                str(sum(counts.quarantined.values())),
            ]
        )
        seconds = f"{receipt.duration_s:.2f}" if receipt.duration_s is not None else ""
        lines.append(
            f"| {receipt.stage} | {receipt.status} | " + " | ".join(cells) + f" | {seconds} |"
        )
    lines += ["", "## Quarantine by reason", "", "| export | reason | records |", "|---|---|---:|"]
    for export, reasons in summary.quarantine.items():
        lines += [f"| {export} | {reason} | {count} |" for reason, count in reasons.items()]
    skipped = next(
        (r.counts.skipped for r in summary.stages if r.stage == "collect" and r.counts), {}
    )
    if skipped:
        lines += ["", "## Skipped source lines", "", "| reason | lines |", "|---|---:|"]
        lines += [f"| {reason} | {count} |" for reason, count in skipped.items()]
    if summary.warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- {warning}" for warning in summary.warnings]
    failures = [r for r in summary.stages if r.status != "passed"]
    if failures:
        lines += ["", "## Problems", ""]
        lines += [f"- **{r.stage}** ({r.status}): {r.reason}" for r in failures]
    if drift.findings:
        lines += ["", "## Drift findings", ""]
        lines += [f"- {f.level}: {f.message}" for f in drift.findings]
    return "\n".join(lines) + "\n"
