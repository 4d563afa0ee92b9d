"""audit-full groups over what was recorded: receipts, acceptance, index, replay. Read-only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.jsonio import RawLine, file_sha256, iter_json_objects
from distill.leftovers import leftovers
from distill.runs.acceptance import AcceptanceReport
from distill.runs.audit.context import (
    OWN_LINE_LIMIT,
    SAMPLE_HEAD,
    SAMPLE_STRIDE,
    AuditContext,
    info,
    required,
)
from distill.runs.checks import CheckResult, index_sync_checks, iter_rows, receipts_valid
from distill.schemas import AuditCheck, ReplayRun


def acceptance_checks(acceptance: Callable[[], AcceptanceReport]) -> Iterator[AuditCheck]:
    report = acceptance()
    failed = [c.name for c in report.checks if not c.passed]
    yield required(
        "acceptance",
        CheckResult(
            "acceptance invariants hold on the fixture",
            report.passed,
            f"{len(report.checks) - len(failed)}/{len(report.checks)} hold"
            + (f"; failed: {', '.join(failed[:3])}" if failed else ""),
        ),
    )


OLD_VERSIONS_NOTED = 20  # a build writes ~3 versions (data, FTS, ANN); past this, clean up


# -- receipts ---------------------------------------------------------------------------------


def receipt_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    summary, folder = ctx.summary, ctx.run_folder
    left = leftovers(ctx.home)
    yield info(
        "receipts",
        CheckResult(
            "no leftovers of interrupted writes",
            not left,
            "none"
            if not left
            else f"{len(left)}: {', '.join(ctx.home.relative(p) for p in left[:3])} "
            "(the next writing command removes them)",
        ),
    )
    yield required(
        "receipts",
        CheckResult(
            "the latest run's summary validates",
            summary is not None,
            ctx.summary_error or (f"run {summary.run_id}" if summary else "no run"),
        ),
    )
    if summary is None or folder is None:
        return
    yield required(
        "receipts",
        CheckResult(
            "the latest run is complete: every stage passed",
            summary.passed and all(r.status == "passed" for r in summary.stages),
            f"{len(summary.stages)} stages passed"
            if summary.passed
            else f"failed at {summary.failed_stage}",
        ),
    )
    yield required("receipts", receipts_valid(folder))
    joined = "\n".join(f"{r.stage}:{r.output_hash}" for r in summary.stages)
    expected = hashlib.sha256(joined.encode()).hexdigest()
    yield required(
        "receipts",
        CheckResult(
            "run_hash is the sha256 of the stages' output hashes",
            summary.run_hash == expected,
            f"{summary.run_hash}"
            if summary.run_hash == expected
            else f"recorded {summary.run_hash}, recomputed {expected}",
        ),
    )
    changed = []
    for dataset in summary.datasets:
        path = ctx.home.root / dataset.path
        now = file_sha256(path) if path.is_file() else "absent"
        if now != dataset.sha256:
            changed.append(dataset.path)
    yield required(
        "receipts",
        CheckResult(
            "exports on disk are the ones the latest run recorded",
            not changed,
            f"changed since run {summary.run_id}: {', '.join(changed)}"
            if changed
            else f"{len(summary.datasets)} sha256 match",
        ),
    )
    for receipt in summary.stages:
        if receipt.counts:
            for key in ("records_in", "records_out"):
                ctx.metrics[f"{receipt.stage}.{key}"] = getattr(receipt.counts, key)


# -- index ------------------------------------------------------------------------------------


def index_audit_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    # imported when called: only what reads the index loads it, so other commands start faster
    from distill.index import PlaybookStore
    from distill.index.maintenance import old_versions

    synced = list(index_sync_checks(ctx.home, ctx.index_uri))
    for check in synced:
        yield required("index", check)
    if len(synced) < 2:  # the table could not be opened
        return
    store = PlaybookStore(ctx.index_uri)
    manifest = store.require_manifest()
    rag = ctx.home.export_path("rag")
    current = file_sha256(rag) if rag.is_file() else None
    yield required(
        "index",
        CheckResult(
            "the index was built from the current RAG export",
            manifest.source_sha256 == current,
            "source sha256 matches"
            if manifest.source_sha256 == current
            else f"built from {manifest.source_sha256}, export is {current}",
        ),
    )
    try:
        configured = ctx.embedder.identity()
    except DistillError as err:
        configured = {"error": str(err)}
    yield required(
        "index",
        CheckResult(
            "embedder identity matches the configured embedder",
            configured == manifest.embedder,
            f"{manifest.embedder.get('name')}, dim {manifest.embedder.get('dim')}"
            if configured == manifest.embedder
            else f"index {manifest.embedder}, configured {configured}: "
            "rebuild with `distill index build` or pass --embedder",
        ),
    )
    old = old_versions(store)
    yield info(
        "index",
        CheckResult(
            "old index versions are few",
            old <= OLD_VERSIONS_NOTED,
            f"{old} old version(s) besides the published one"
            + ("" if old <= OLD_VERSIONS_NOTED else ": `distill index cleanup` removes them")
            + " (each build or update writes a few; cleanup also drops files a killed build left)",
        ),
    )
    stats = store.stats()
    ctx.metrics["index.rows"] = stats["rows"]
    ctx.metrics["index.size_bytes"] = stats["size_bytes"]
    yield info(
        "index",
        CheckResult(
            "index size",
            True,
            f"version {stats['version']}, {stats['rows']} rows, {stats['size_bytes']:,} bytes, "
            f"ANN index {'on' if stats['ann_index'] else 'off'}",
        ),
    )


# -- replay -----------------------------------------------------------------------------------


def replay_audit_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    """The replay log is also a source stream: rows from other tools (no ``schema`` tag) sit
    beside distill's own replay_run.v1 lines. Distill's lines are held to the schema and the
    escalation guard; the other rows are collect's to judge, and are only counted here."""
    # imported when called: replay brings httpx and the model clients (~0.15 s), needed here only
    from distill.replay.run import REPLAY_STREAM, ReplayOptions

    log = ctx.home.kb_dir / REPLAY_STREAM
    own: list[tuple[int, dict[str, Any]]] = []
    invalid: list[str] = []
    garbage: list[RawLine] = []  # collect skips these with a reason
    foreign = 0  # another tool's rows: collect keeps them
    lines = iter_json_objects(log, OWN_LINE_LIMIT, on_bad=lambda raw, _: garbage.append(raw))
    for raw, row in lines if log.is_file() else []:
        if row.get("schema") == "replay_run.v1":
            own.append((raw.line_no, row))
        elif "schema" in row:
            invalid.append(f"line {raw.line_no}: schema {row['schema']!r}, not replay_run.v1")
        else:
            foreign += 1
    foreign += len(garbage)
    checked = 0
    for n, (line_no, row) in enumerate(own, 1):
        if ctx.full or n <= SAMPLE_HEAD or n % SAMPLE_STRIDE == 0:
            checked += 1
            try:
                ReplayRun.model_validate(row)
            except ValidationError as err:
                first = err.errors()[0]
                loc = ".".join(str(part) for part in first["loc"]) or "(line)"
                invalid.append(f"line {line_no}: {loc}: {first['msg']}")
    detail = (
        f"{len(invalid)} invalid, e.g. {invalid[0]}"
        if invalid
        else f"{checked}/{len(own)} replay_run.v1 lines checked, all valid"
        if own
        else "no replay runs logged yet"
    )
    if foreign:
        detail += f"; {foreign} other line(s) (no schema tag) left to collect"
    yield required(
        "replay", CheckResult("the replay log validates as replay_run.v1", not invalid, detail)
    )
    yield required("replay", _escalation_guard(ctx, own))
    yield required("replay", _dry_run(ctx))
    if ctx.self_retrieval is not None:
        record_id, found = ctx.self_retrieval
        yield info(
            "replay",
            CheckResult(
                "the fixed task retrieves its own playbook",
                found,
                f"{record_id} {'in' if found else 'not in'} the top {ReplayOptions().top_k} "
                "(near-duplicate playbooks can outrank it)",
            ),
        )


def _escalation_guard(ctx: AuditContext, own: list[tuple[int, dict[str, Any]]]) -> CheckResult:
    """Every line of distill's own, sampled or not: no escalation unless the flag was recorded."""
    breaches = escalated = passed = answered = 0
    examples: list[str] = []
    for line_no, run in own:
        roles = [a.get("role") for a in run.get("attempts") or [] if isinstance(a, dict)]
        used = "escalation" in roles
        if (used or run.get("escalated")) and run.get("escalation_allowed") is not True:
            breaches += 1
            examples.append(f"line {line_no}: escalated without the flag")
        elif bool(run.get("escalated")) != used:
            breaches += 1
            examples.append(f"line {line_no}: escalated={run.get('escalated')}, attempts {roles}")
        escalated += used
        if run.get("verdict") in ("passed", "failed"):
            answered += 1
            passed += run.get("verdict") == "passed"
    ctx.metrics["replay.runs"] = len(own)
    ctx.metrics["replay.gate_pass_rate"] = round(passed / answered, 4) if answered else 0.0
    ctx.metrics["replay.escalation_rate"] = round(escalated / answered, 4) if answered else 0.0
    return CheckResult(
        "escalation guard: no escalated attempt without the flag recorded",
        not breaches,
        f"{breaches} breach(es): {'; '.join(examples[:3])}"
        if breaches
        else f"{len(own)} run(s), {escalated} escalated, all with the flag",
    )


def _dry_run(ctx: AuditContext) -> CheckResult:
    """A dry run of a fixed task (an accepted playbook's own instruction); logs nothing."""
    # imported when called: replay brings httpx and the model clients (~0.15 s), needed here only
    from distill.index import PlaybookStore, Retriever
    from distill.replay import ReplayOptions, replay

    name = "a dry-run replay of a fixed task works"
    rag = iter_rows(ctx.home.export_path("rag"))
    record = next((r for r in rag if r.get("category") == "accepted"), None)
    task = ctx.task or (record["instruction"] if record else None)
    if task is None:
        return CheckResult(name, False, "no accepted playbook to take a task from")
    if "://" not in ctx.index_uri and not Path(ctx.index_uri).is_dir():
        return CheckResult(name, False, f"no index at {ctx.index_uri}: run `distill index build`")

    def no_model() -> Any:
        raise AssertionError("a dry run must not load a model")

    try:
        run = replay(
            ctx.home,
            task,
            # the mechanics of a bundle: an audit may run on the uncalibrated hashing embedder
            ReplayOptions(dry_run=True, log=False, min_relevance=0.0),
            retriever=lambda: Retriever(PlaybookStore(ctx.index_uri), ctx.embedder),
            local=no_model,
        )
    except DistillError as err:
        return CheckResult(name, False, str(err))
    labelled = all(f"[{p.id}]" in run.bundle.messages[-1].content for p in run.bundle.exemplars)
    found = record is not None and any(h.id == record["id"] for h in run.hits)
    if ctx.task is None and record is not None:
        ctx.self_retrieval = (record["id"], found)
    return CheckResult(
        name,
        bool(run.bundle.exemplars) and labelled,
        f"{task[:50]!r}: {len(run.hits)} hits, {len(run.bundle.exemplars)} exemplars, "
        f"ids labelled: {labelled}",
    )
