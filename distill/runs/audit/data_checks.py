"""audit-full groups over the data: recon, schemas, evidence, scoring, exports. Read-only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from distill.runs.audit.context import (
    BASELINES_FILE,
    PROVENANCE_GAP_LIMIT,
    AuditContext,
    balance,
    info,
    receipt_of,
    required,
    validate_file,
)
from distill.runs.checks import (
    CheckResult,
    count_rows,
    iter_rows,
    preference_checks,
    provenance_check,
)
from distill.schemas import (
    AuditBaseline,
    AuditCheck,
    Category,
    EvidenceRecord,
    PreferenceSample,
    QuarantineRecord,
    RagSample,
    ScoredRun,
    SftSample,
    SkipRecord,
)

# -- recon ------------------------------------------------------------------------------------


def recon_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    from distill.recon import recon

    streams = recon(ctx.home, ctx.config)
    known = [s for s in streams if s.adapter and s.rows]
    yield required(
        "recon",
        CheckResult(
            "source streams are present",
            bool(known),
            f"{len(known)} stream(s), {sum(s.rows for s in known)} rows"
            if known
            else f"no stream with an adapter under {ctx.home.relative(ctx.home.kb_dir)}/",
        ),
    )
    unknown = [s.stream for s in streams if not s.adapter]
    yield info(
        "recon",
        CheckResult(
            "every stream has an adapter",
            not unknown,
            f"not collected: {', '.join(unknown)}" if unknown else f"{len(streams)} stream(s)",
        ),
    )
    rates = {s.stream: s.missing_provenance / s.rows for s in known}
    high = {name: rate for name, rate in rates.items() if rate > PROVENANCE_GAP_LIMIT}
    worst = max(rates.values(), default=0.0)
    ctx.metrics["recon.provenance_gap_rate_max"] = round(worst, 4)
    yield info(
        "recon",
        CheckResult(
            f"provenance gap rate ≤ {PROVENANCE_GAP_LIMIT:.0%} in every stream",
            not high,
            ", ".join(f"{n} {r:.1%}" for n, r in sorted(high.items()))
            if high
            else f"worst {worst:.1%}",
        ),
    )


# -- schemas ----------------------------------------------------------------------------------


def schema_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    home = ctx.home
    files: list[tuple[str, list[Path], type[BaseModel], bool]] = [
        ("evidence", sorted(home.evidence_dir.glob("*.jsonl")), EvidenceRecord, True),
        ("skip", [home.skips_path], SkipRecord, True),
        ("scored-run", sorted(home.scored_dir.glob("*.jsonl")), ScoredRun, True),
        ("RAG export", [home.export_path("rag")], RagSample, True),
        ("SFT export", [home.export_path("sft")], SftSample, True),
        ("preference export", [home.export_path("preference")], PreferenceSample, True),
        ("quarantine", sorted(home.quarantine_dir.glob("*.jsonl")), QuarantineRecord, False),
        ("audit baseline", [home.kb_dir / BASELINES_FILE], AuditBaseline, False),
    ]
    for label, paths, model, must_exist in files:
        present = [path for path in paths if path.is_file()]
        if not present:
            yield required(
                "schemas",
                CheckResult(
                    f"{label} lines validate",
                    not must_exist,
                    "absent: run `distill run-all`" if must_exist else "none written yet",
                ),
            )
            continue
        checked, total, errors = 0, 0, list[str]()
        for path in present:
            c, t, e = validate_file(home, path, model, full=ctx.full)
            checked, total, errors = checked + c, total + t, errors + e
        how = "every line" if checked == total else f"{checked} of {total} lines (sampled)"
        yield required(
            "schemas",
            CheckResult(
                f"{label} lines validate as {_schema_name(model)}",
                not errors,
                f"{len(errors)} invalid, e.g. {errors[0]}" if errors else f"{how} valid",
            ),
        )


# -- evidence and scoring ---------------------------------------------------------------------


def evidence_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    from distill.stages import collect

    stamp = ctx.summary.recorded_at if ctx.summary else "2000-01-01T00:00:00Z"
    report = collect(ctx.home, ctx.config, recorded_at=stamp, dry_run=True)
    yield required(
        "evidence",
        CheckResult(
            "a collect dry-run completes and balances",
            report.passed,
            "; ".join(report.errors)
            or f"in {report.records_in} = out {report.records_out} "
            f"+ skipped {report.skipped_total} + quarantined {report.quarantined_total}",
        ),
    )
    on_disk = count_rows([ctx.home.skips_path])
    evidence = count_rows(sorted(ctx.home.evidence_dir.glob("*.jsonl")))
    receipt = receipt_of(ctx, "collect")
    read = receipt.counts.records_in if receipt and receipt.counts else None
    yield required(
        "evidence",
        CheckResult(
            "evidence + skips on disk = the lines the latest collect read",
            read == evidence + on_disk,
            f"{evidence} evidence + {on_disk} skips = {read}"
            if read == evidence + on_disk
            else f"{evidence} evidence + {on_disk} skips on disk, the collect receipt read {read}",
        ),
    )
    # The replay log is a source stream that every replay appends to: new lines since the last
    # run are normal, so being behind the sources is info, not a failure.
    current = (report.records_out, report.skipped_total) == (evidence, on_disk)
    yield info(
        "evidence",
        CheckResult(
            "evidence on disk is current with the sources",
            current,
            f"{evidence} evidence, {on_disk} skips"
            if current
            else f"the sources now give {report.records_out} evidence + "
            f"{report.skipped_total} skips; disk holds {evidence} + {on_disk}: rerun run-all",
        ),
    )


def scoring_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    yield required("scoring", balance(ctx, "score", "every evidence row is scored"))
    on_disk = ctx.scored_counts
    for category in Category:
        ctx.metrics[f"category.{category.value}"] = on_disk.get(category.value, 0)
    shown = ", ".join(f"{cat} {n}" for cat, n in sorted(on_disk.items())) or "nothing scored"
    yield info(
        "scoring",
        CheckResult(
            "category distribution on disk has accepted runs", bool(on_disk["accepted"]), shown
        ),
    )
    receipt = receipt_of(ctx, "score")
    recorded = dict(receipt.counts.out_by_category) if receipt and receipt.counts else None
    same = recorded == dict(on_disk)
    yield required(
        "scoring",
        CheckResult(
            "categories on disk match the latest score receipt",
            same,
            "match" if same else f"receipt {recorded}, disk {dict(sorted(on_disk.items()))}",
        ),
    )


# -- exports ----------------------------------------------------------------------------------


def export_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    """Streamed: each export is read row by row (twice for provenance), never held whole."""
    home = ctx.home
    paths = {name: home.export_path(name) for name in ("rag", "sft", "preference")}
    sft_allowed = {"accepted"}
    if ctx.stage_params("export_sft").get("include_partial"):
        sft_allowed.add("partially_accepted")
    rag_allowed = {"accepted", "partially_accepted"}
    if ctx.stage_params("export_rag").get("include_review"):
        rag_allowed.add("needs_human_review")
    yield required(
        "exports",
        _allowed(
            ctx, "SFT holds no forbidden category", iter_rows(paths["sft"]), "quality_score",
            sft_allowed,
        ),
    )  # fmt: skip
    yield required(
        "exports",
        _allowed(
            ctx, "RAG holds no rejected run", iter_rows(paths["rag"]), "category", rag_allowed
        ),
    )
    for check in preference_checks(iter_rows(paths["preference"])):
        level = info if check.name == "preference has at least one pair" else required
        yield level("exports", check)
    yield required(
        "exports", provenance_check(*(iter_rows(paths[n]) for n in ("rag", "sft", "preference")))
    )
    for export in ("rag", "sft", "preference"):
        stage = f"export_{export}"
        yield required("exports", balance(ctx, stage, f"{export}: scored = out + quarantined"))
        ctx.metrics[f"quarantine.{export}"] = count_rows([home.quarantine_path(export)])


def _allowed(
    ctx: AuditContext,
    name: str,
    exported: Iterable[dict[str, Any]],
    key_field: str,
    allowed: set[str],
) -> CheckResult:
    """Both the row's own label and the category its source row was scored with (matched by id
    and sig_hash) must be allowed."""
    bad = []
    seen = 0
    for row in exported:
        seen += 1
        key = (str(row.get("id")), str((row.get("provenance") or {}).get("sig_hash")))
        scored = ctx.scored.get(key, "unknown")
        if row.get(key_field) not in allowed or scored not in allowed:
            bad.append(f"{key[0]} ({row.get(key_field)}, scored {scored})")
    return CheckResult(
        name,
        not bad,
        f"{len(bad)} row(s): {', '.join(bad[:3])}"
        if bad
        else f"{seen} rows, all {' or '.join(sorted(allowed))}",
    )


def _schema_name(model: type[BaseModel]) -> str:
    return str(model.model_fields["schema_"].default)
