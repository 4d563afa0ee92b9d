"""audit-full: passes on a fresh run, writes nothing it must not, and each check can fail.

The home is the sample corpus run through run-all once per module (hashing embedder, pinned
recorded_at, one logged dry-run replay); every test works on its own copy of it.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import lancedb
import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.index import PlaybookStore
from distill.jsonio import model_line
from distill.replay.run import REPLAY_STREAM
from distill.runs import RunOptions, run_all
from distill.runs.acceptance import AcceptanceReport
from distill.runs.audit import AuditOptions, run_audit, write_audit_report
from distill.runs.checks import CheckResult
from distill.schemas import Attempt, AuditBaseline, AuditReport, ReplayRun, Usage

from .conftest import FIXTURES, RECORDED_AT, copy_home, read_jsonl

runner = CliRunner()
OPTIONS = AuditOptions(embedder="hash-384", skip=frozenset({"acceptance"}))
AUDIT_OUTPUTS = {
    "reports/distillation/audit-full-report.md",
    "reports/distillation/audit-full-report.json",
    "data/_kb/audit_baselines.jsonl",
    "data/_kb/audit_baselines.jsonl.lock",
    ".distill/writer.json",  # who holds the home's writer lock (audit-full takes it)
    ".distill/writer.lock",
    ".distill/.gitignore",
}


@pytest.fixture
def audited(pristine: Home, tmp_path: Path) -> Home:
    return copy_home(pristine, tmp_path)


def _audit(home: Home, options: AuditOptions = OPTIONS, **kwargs: object) -> AuditReport:
    return run_audit(home, load_config(home.config_path), options, **kwargs)  # type: ignore[arg-type]


def _failed(report: AuditReport) -> set[str]:
    return {c.name for c in report.checks if c.level == "required" and not c.passed}


def _snapshot(home: Home) -> dict[str, str]:
    return {
        path.relative_to(home.root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.root.rglob("*"))
        if path.is_file() and path.relative_to(home.root).as_posix() not in AUDIT_OUTPUTS
    }


def test_audit_full_passes_on_a_fresh_run_and_modifies_no_pipeline_output(
    audited: Home,
) -> None:
    before = _snapshot(audited)
    result = runner.invoke(
        app, ["audit-full", "--home", str(audited.root), "--embedder", "hash-384", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert _snapshot(audited) == before  # data, exports, index, receipts, replay log untouched
    report = AuditReport.model_validate_json(result.stdout)
    assert report.passed and not _failed(report)
    groups = {c.group for c in report.checks}
    assert groups == {
        "recon", "schemas", "evidence", "scoring", "exports",
        "receipts", "acceptance", "index", "replay",
    }  # fmt: skip
    acceptance = next(c for c in report.checks if c.group == "acceptance")
    assert acceptance.level == "required" and acceptance.passed
    md = (audited.reports_dir / "audit-full-report.md").read_text()
    assert "**PASSED**" in md and "| **FAIL** |" not in md
    assert report.metrics["index.rows"] == report.metrics["export_rag.records_out"] > 0
    assert report.metrics["replay.runs"] == 1


def test_baselines_grow_by_one_row_per_run_and_drift_is_a_table(audited: Home) -> None:
    first = _audit(audited)
    assert first.baseline_created_at is None and first.drift == []
    second = _audit(audited)
    baselines = read_jsonl(audited.kb_dir / "audit_baselines.jsonl")
    assert len(baselines) == 2
    assert [AuditBaseline.model_validate(b).metrics for b in baselines] == [
        first.metrics,
        second.metrics,
    ]
    assert second.baseline_created_at == first.created_at
    assert second.drift and not any(d.drifted for d in second.drift)
    log = audited.kb_dir / REPLAY_STREAM
    run_line = log.read_bytes().splitlines()[-1]
    with open(log, "ab") as handle:  # three more replays: replay.runs 1 → 4, +300%
        handle.write(b"\n".join([run_line] * 3) + b"\n")
    third = _audit(audited)
    assert len(read_jsonl(audited.kb_dir / "audit_baselines.jsonl")) == 3
    drifted = {d.metric: d for d in third.drift if d.drifted}
    assert set(drifted) == {"replay.runs"} and drifted["replay.runs"].change == 3.0
    write_audit_report(audited, third)
    md = (audited.reports_dir / "audit-full-report.md").read_text()
    assert "| replay.runs | 1 | 4 | +300.0% | **drift** |" in md


# -- each check can fail ------------------------------------------------------------------------


def _rewrite(
    path: Path, edit: Callable[[list[dict[str, object]]], list[dict[str, object]]]
) -> None:
    rows = edit(read_jsonl(path))
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def _scored(home: Home, category: str) -> str:
    return next(
        str(row["id"])
        for path in sorted(home.scored_dir.glob("*.jsonl"))
        for row in read_jsonl(path)
        if row["category"] == category
    )


def rejected_row_in_sft(home: Home) -> None:
    rejected = _scored(home, "rejected")
    _rewrite(home.export_path("sft"), lambda rows: [*rows, {**rows[0], "id": rejected}])


def index_row_missing(home: Home) -> None:
    store = PlaybookStore(str(home.index_dir))
    manifest = store.require_manifest()
    table = lancedb.connect(str(home.index_dir)).open_table("playbooks")
    gone = table.to_arrow().column("id")[0].as_py()
    table.delete(f"id = '{gone}'")  # a broken update: the manifest follows the new version
    moved = manifest.model_copy(update={"version": table.version, "rows": manifest.rows - 1})
    store.manifest_path.write_text(moved.model_dump_json(by_alias=True))


def truncated_receipt(home: Home) -> None:
    receipt = next(home.reports_dir.glob("*/export_sft.json"))
    receipt.write_bytes(receipt.read_bytes()[:200])


def escalated_without_flag(home: Home) -> None:
    log = home.kb_dir / REPLAY_STREAM
    own = ReplayRun.model_validate_json(log.read_bytes().splitlines()[-1])
    attempt = Attempt(
        role="escalation",
        model="hosted",
        endpoint="https://models.example/v1",
        prompt_style="chat",
        latency_ms=1.0,
        usage=Usage(),
        response="an answer",
        gate=None,
    )
    sneaky = own.model_copy(
        update={"attempts": [attempt], "escalated": True, "escalation_allowed": False}
    )
    with open(log, "ab") as handle:
        handle.write(model_line(sneaky))


def self_pair(home: Home) -> None:
    def edit(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        first = dict(rows[0])
        first["rejected_provenance"] = first["chosen_provenance"]
        return [first, *rows[1:]]

    _rewrite(home.export_path("preference"), edit)


def dropped_evidence_line(home: Home) -> None:
    path = sorted(home.evidence_dir.glob("*.jsonl"))[0]
    _rewrite(path, lambda rows: rows[1:])


def scored_category_edited(home: Home) -> None:
    path = sorted(home.scored_dir.glob("*.jsonl"))[0]
    _rewrite(path, lambda rows: [{**rows[0], "category": "rejected"}, *rows[1:]])


def invalid_quarantine_line(home: Home) -> None:
    with open(home.quarantine_path("rag"), "ab") as handle:
        handle.write(b'{"schema": "quarantine.v1", "reason": "not a reason"}\n')


def rag_export_changed_after_indexing(home: Home) -> None:
    _rewrite(home.export_path("rag"), lambda rows: rows[:-1])


def no_streams(home: Home) -> None:
    for path in home.kb_dir.glob("*.jsonl"):
        path.unlink()


def dry_run_task_absent_from_the_index(home: Home) -> None:
    shutil.rmtree(home.index_dir)


CORRUPTIONS = [
    (rejected_row_in_sft, "SFT holds no forbidden category"),
    (index_row_missing, "index rows == RAG export rows"),
    (truncated_receipt, "receipts, summary and drift validate"),
    (escalated_without_flag, "escalation guard: no escalated attempt without the flag recorded"),
    (self_pair, "preference has no self-pair"),
    (dropped_evidence_line, "evidence + skips on disk = the lines the latest collect read"),
    (scored_category_edited, "categories on disk match the latest score receipt"),
    (invalid_quarantine_line, "quarantine lines validate as quarantine.v1"),
    (rag_export_changed_after_indexing, "the index was built from the current RAG export"),
    (no_streams, "source streams are present"),
    (dry_run_task_absent_from_the_index, "a dry-run replay of a fixed task works"),
]


@pytest.mark.parametrize(
    ("corrupt", "check"), CORRUPTIONS, ids=[c.__name__ for c, _ in CORRUPTIONS]
)
def test_each_corruption_fails_its_named_check(
    audited: Home, corrupt: Callable[[Home], None], check: str
) -> None:
    assert _audit(audited).passed
    corrupt(audited)
    report = _audit(audited)
    assert not report.passed
    assert check in _failed(report)


@pytest.mark.parametrize(
    ("where", "line"),
    [("rag", b'{"broken\n'), ("scored", b"{}\n"), ("rag", b"[1, 2]\n")],
)
def test_a_torn_or_foreign_line_is_reported_not_a_crash(
    audited: Home, where: str, line: bytes
) -> None:
    path = (
        audited.export_path("rag")
        if where == "rag"
        else sorted(audited.scored_dir.glob("*.jsonl"))[0]
    )
    with open(path, "ab") as handle:
        handle.write(line)
    result = runner.invoke(
        app,
        ["audit-full", "--home", str(audited.root), "--embedder", "hash-384", "--skip",
         "acceptance", "--json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    report = AuditReport.model_validate_json(result.stdout)  # the report is still written
    failed = {c.name: c.detail for c in report.checks if c.level == "required" and not c.passed}
    schema_check = next(
        name
        for name in failed
        if name.endswith(
            "lines validate as " + ("rag_sample.v1" if where == "rag" else "scored_run.v1")
        )
    )
    assert path.name in failed[schema_check]
    assert any(name.endswith("checks ran") for name in failed)  # the groups that read it say so
    assert (audited.reports_dir / "audit-full-report.md").is_file()


def test_a_missing_index_is_reported_and_not_recreated(audited: Home) -> None:
    shutil.rmtree(audited.index_dir)
    report = _audit(audited)
    assert "index rows == RAG export rows" in _failed(report)
    assert not audited.index_dir.exists()


def test_a_partial_audit_does_not_hide_metrics_from_the_next_full_one(audited: Home) -> None:
    _audit(audited)
    partial = _audit(
        audited, AuditOptions(embedder="hash-384", skip=frozenset({"acceptance", "index"}))
    )
    assert "index.rows" not in partial.metrics
    full = _audit(audited)
    index_rows = next(d for d in full.drift if d.metric == "index.rows")
    assert index_rows.baseline == index_rows.current and not index_rows.drifted
    assert not any(d.drifted for d in full.drift)


def test_copies_of_a_record_with_other_categories_are_not_taken_for_leaks(
    tmp_path: Path,
) -> None:
    """Copies share their record's id on purpose; the audit matches rows by id and sig_hash."""
    home = Home((tmp_path / "home").resolve())
    shutil.copytree(FIXTURES / "sample" / "data", home.root / "data")
    audits = home.kb_dir / "audits.jsonl"
    accepted = next(r for r in read_jsonl(audits) if r["severity"] in ("info", "low"))
    copy = {**accepted, "severity": "critical", "created_at": "2026-12-31T00:00:00Z"}
    with open(audits, "ab") as handle:  # a later copy of an accepted audit, scored rejected
        handle.write(orjson.dumps(copy) + b"\n")
    options = RunOptions(
        recorded_at=RECORDED_AT, repo_root=FIXTURES / "sample" / "repo", embedder="hash-384"
    )
    assert run_all(home, load_config(home.config_path), options).summary.passed
    report = _audit(home)
    assert report.passed, _failed(report)


def test_garbage_in_the_replay_stream_is_left_to_collect_but_a_foreign_schema_is_not(
    audited: Home,
) -> None:
    log = audited.kb_dir / REPLAY_STREAM
    with open(log, "ab") as handle:
        handle.write(b'not json\n["not", "an", "object"]\n{"note": "another tool"}\n')
    report = _audit(audited)
    check = next(c for c in report.checks if c.name == "the replay log validates as replay_run.v1")
    assert check.passed and "16 other line(s)" in check.detail  # 13 from the sample + 3
    with open(log, "ab") as handle:
        handle.write(b'{"schema": "replay_run.v0", "run_id": "old"}\n')
    assert "the replay log validates as replay_run.v1" in _failed(_audit(audited))


def test_a_failing_acceptance_fails_the_audit(audited: Home) -> None:
    broken = AcceptanceReport(checks=[CheckResult("an invariant", False, "broken")], homes=[])
    report = _audit(audited, AuditOptions(embedder="hash-384"), acceptance=lambda: broken)
    assert _failed(report) == {"acceptance invariants hold on the fixture"}


def test_another_embedder_fails_the_identity_check(audited: Home) -> None:
    report = _audit(audited, AuditOptions(embedder="hash-256", skip=frozenset({"acceptance"})))
    assert "embedder identity matches the configured embedder" in _failed(report)


def test_the_exit_code_changes_and_names_the_check(audited: Home) -> None:
    args = ["audit-full", "--home", str(audited.root), "--embedder", "hash-384"]
    assert runner.invoke(app, [*args, "--skip", "acceptance"]).exit_code == 0
    rejected_row_in_sft(audited)
    result = runner.invoke(app, [*args, "--skip", "acceptance", "--full"])
    assert result.exit_code == 1
    assert "SFT holds no forbidden category" in result.stderr
    md = (audited.reports_dir / "audit-full-report.md").read_text()
    assert "**FAILED**" in md and "every line validated (--full)" in md


def test_unknown_group_is_a_clear_error(audited: Home) -> None:
    result = runner.invoke(app, ["audit-full", "--home", str(audited.root), "--skip", "nope"])
    assert result.exit_code == 1 and "unknown audit group" in result.stderr
