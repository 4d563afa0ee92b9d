"""Drift against the previous run: counts, category mixes, new error classes, determinism."""

from __future__ import annotations

from distill.schemas import DriftFinding, DriftReport, RunSummary, StageReceipt

DEFAULT_THRESHOLD = 0.2  # --drift-threshold, resolved by distill.settings.drift_threshold


def compare_runs(current: RunSummary, previous: RunSummary | None, threshold: float) -> DriftReport:
    if previous is None:
        return DriftReport(
            run_id=current.run_id,
            previous_run_id=None,
            threshold=threshold,
            level="first_run",
            findings=[],
            message="first run: nothing to compare against",
        )
    before = {receipt.stage: receipt for receipt in previous.stages}
    findings: list[DriftFinding] = []
    for receipt in current.stages:
        old = before.get(receipt.stage)
        if old is not None:
            findings += _stage_findings(receipt, old, threshold)
    alerts = [f for f in findings if f.level == "alert"]
    level = "alert" if alerts else "warn" if findings else "ok"
    message = {
        "alert": f"{len(alerts)} determinism violation(s): same inputs, different outputs",
        "warn": f"{len(findings)} change(s) above {threshold:.0%} or new error classes",
        "ok": f"no change above {threshold:.0%} since {previous.run_id}",
    }[level]
    return DriftReport(
        run_id=current.run_id,
        previous_run_id=previous.run_id,
        threshold=threshold,
        level=level,
        findings=findings,
        message=message,
    )


def _stage_findings(now: StageReceipt, old: StageReceipt, threshold: float) -> list[DriftFinding]:
    stage = now.stage
    findings: list[DriftFinding] = []
    if (
        now.input_hash
        and now.input_hash == old.input_hash
        and now.output_hash != old.output_hash
        and now.status == old.status == "passed"
    ):
        same_code = now.code_hash == old.code_hash
        findings.append(
            DriftFinding(
                level="alert" if same_code else "warn",
                stage=stage,
                kind="determinism" if same_code else "code_change",
                metric="output_hash",
                previous=old.output_hash,
                current=now.output_hash,
                message=f"{stage}: same input_hash, different output_hash"
                + ("" if same_code else " (distill's code changed in between)"),
            )
        )
    if now.status != "passed" and old.status == "passed":
        findings.append(
            DriftFinding(
                level="warn",
                stage=stage,
                kind="new_error_class",
                metric=f"status:{now.status}",
                previous=old.status,
                current=now.status,
                message=f"{stage}: {now.reason}",
            )
        )
    if now.counts is None or old.counts is None:
        return findings
    counts, before = now.counts, old.counts
    pairs = {
        "records_in": (before.records_in, counts.records_in),
        "records_out": (before.records_out, counts.records_out),
        "skipped": (sum(before.skipped.values()), sum(counts.skipped.values())),
        "quarantined": (sum(before.quarantined.values()), sum(counts.quarantined.values())),
    }
    for metric, (prev, cur) in pairs.items():
        findings += _change(stage, "count", metric, prev, cur, threshold)
    for category in sorted(set(before.out_by_category) | set(counts.out_by_category)):
        prev, cur = before.out_by_category.get(category, 0), counts.out_by_category.get(category, 0)
        findings += _change(stage, "category", category, prev, cur, threshold)
    for kind, now_reasons, old_reasons in (
        ("skipped", counts.skipped, before.skipped),
        ("quarantined", counts.quarantined, before.quarantined),
    ):
        for reason in sorted(set(now_reasons) - {r for r, n in old_reasons.items() if n}):
            if now_reasons[reason]:
                findings.append(
                    DriftFinding(
                        level="warn",
                        stage=stage,
                        kind="new_error_class",
                        metric=f"{kind}:{reason}",
                        previous=0,
                        current=now_reasons[reason],
                        message=f"{stage}: {kind} reason {reason!r} not seen in the previous run",
                    )
                )
    return findings


def _change(
    stage: str, kind: str, metric: str, prev: int, cur: int, threshold: float
) -> list[DriftFinding]:
    if prev == cur:
        return []
    change = (cur - prev) / max(prev, 1)
    if abs(change) <= threshold:
        return []
    return [
        DriftFinding(
            level="warn",
            stage=stage,
            kind=kind,
            metric=metric,
            previous=prev,
            current=cur,
            change=round(change, 4),
            message=f"{stage}: {metric} {prev} → {cur} ({change:+.0%})",
        )
    ]
