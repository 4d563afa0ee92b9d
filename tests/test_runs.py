"""run-all, receipts, drift and the acceptance gate — including that the gate can fail."""

from __future__ import annotations

import importlib
import itertools
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import canonical_json
from distill.runs import RunOptions, compare_runs, run_all
from distill.runs.acceptance import DEFAULT_FIXTURE, run_acceptance
from distill.runs.expected import load_expectations
from distill.schemas import DriftReport, RunSummary, StageReceipt

from .conftest import FIXTURES, RECORDED_AT

# The stage functions shadow their modules' names in distill.stages, so fetch the modules.
export_datasets = importlib.import_module("distill.stages.export_datasets")
export_preference = importlib.import_module("distill.stages.export_preference")
collect_module = importlib.import_module("distill.stages.collect")
runner = CliRunner()
STAGES = ["collect", "score", "export_rag", "export_sft", "export_preference", "index"]


@pytest.fixture
def sample_home(tmp_path: Path) -> Home:
    root = tmp_path / "sample"
    shutil.copytree(FIXTURES / "sample" / "data", root / "data")
    return Home(root.resolve())


def _run(home: Home, **options: Any) -> Any:
    opts = RunOptions(
        recorded_at=RECORDED_AT,
        repo_root=FIXTURES / "sample" / "repo",
        embedder="hash-384",
        **options,
    )
    return run_all(home, load_config(home.config_path), opts)


def test_run_all_writes_valid_receipts_summary_and_drift(sample_home: Home) -> None:
    result = _run(sample_home)
    folder = result.folder
    assert folder.parent == sample_home.reports_dir
    for stage in STAGES:
        receipt = StageReceipt.model_validate_json((folder / f"{stage}.json").read_bytes())
        assert receipt.status == "passed" and receipt.run_id == folder.name
        assert receipt.counts is not None and receipt.output_hash is not None
        assert all(len(f.sha256) == 64 for f in receipt.inputs + receipt.outputs)
    summary = RunSummary.model_validate_json((folder / "summary.json").read_bytes())
    assert summary.passed and summary.run_hash and summary.drift_level == "first_run"
    assert {d.name for d in summary.datasets} == {"rag", "sft", "preference"}
    drift = DriftReport.model_validate_json((folder / "drift.json").read_bytes())
    assert drift.previous_run_id is None
    markdown = (folder / "summary.md").read_text()
    for heading in ("## Datasets", "## Stages", "## Quarantine by reason"):
        assert heading in markdown


def test_same_inputs_give_same_run_hash_and_ok_drift(sample_home: Home) -> None:
    first, second = _run(sample_home), _run(sample_home)
    assert first.summary.run_hash == second.summary.run_hash
    assert second.drift.level == "ok"
    assert second.drift.previous_run_id == first.summary.run_id


def test_editing_one_row_changes_hashes_exactly_downstream(sample_home: Home) -> None:
    first = _run(sample_home)
    path = sample_home.kb_dir / "outcomes.jsonl"
    lines = path.read_bytes().splitlines()
    row = orjson.loads(lines[0])
    row["summary"] += " (edited)"
    path.write_bytes(b"\n".join([orjson.dumps(row), *lines[1:]]) + b"\n")
    second = _run(sample_home)
    before = {r.stage: r for r in first.summary.stages}
    for receipt in second.summary.stages:
        assert receipt.input_hash != before[receipt.stage].input_hash
    assert first.summary.run_hash != second.summary.run_hash
    collect_now = next(r for r in second.summary.stages if r.stage == "collect")
    assert collect_now.output_hash != before["collect"].output_hash
    assert second.drift.level == "ok"  # one changed row is well under the 20% threshold


def test_category_shift_over_threshold_warns(sample_home: Home) -> None:
    _run(sample_home)
    path = sample_home.kb_dir / "observer_reviews.jsonl"
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for row in rows:
        row["verdict"] = "reject"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    result = _run(sample_home)
    assert result.drift.level == "warn"
    assert any(f.kind == "category" and f.stage == "score" for f in result.drift.findings)


def test_new_error_class_warns_and_threshold_is_settable(sample_home: Home) -> None:
    _run(sample_home)
    with open(sample_home.kb_dir / "audits.jsonl", "ab") as handle:
        handle.write(b"{broken\n")
    result = _run(sample_home, drift_threshold=0.5)
    assert result.drift.threshold == 0.5
    assert [f.metric for f in result.drift.findings if f.kind == "new_error_class"] == [
        "skipped:invalid_json"
    ]


def test_same_inputs_different_outputs_is_a_determinism_alert(sample_home: Home) -> None:
    first = _run(sample_home).summary
    tampered = [
        r.model_copy(update={"output_hash": "0" * 64}) if r.stage == "score" else r
        for r in first.stages
    ]
    previous = first.model_copy(update={"stages": tampered, "run_id": "earlier"})
    drift = compare_runs(first, previous, 0.2)
    assert drift.level == "alert"
    assert [(f.stage, f.kind) for f in drift.findings] == [("score", "determinism")]


def test_failed_stage_stops_the_rest_and_exits_nonzero(
    sample_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_datasets, "rag_policy", lambda allowed: lambda record: None)
    result = runner.invoke(
        app, ["run-all", "--home", str(sample_home.root), "--recorded-at", RECORDED_AT]
    )
    assert result.exit_code == 1
    assert "run failed at stage export_rag" in result.stderr
    assert "record type refused" in result.stderr
    statuses = {r.stage: r.status for r in _latest(sample_home).stages}
    assert statuses == {
        "collect": "passed",
        "score": "passed",
        "export_rag": "failed",
        "export_sft": "not_run",
        "export_preference": "not_run",
        "index": "not_run",
    }
    assert not sample_home.export_path("rag").exists()  # the forbidden file never landed


def _latest(home: Home) -> RunSummary:
    folder = sorted(p for p in home.reports_dir.iterdir() if p.is_dir())[-1]
    return RunSummary.model_validate_json((folder / "summary.json").read_bytes())


def test_receipts_show(sample_home: Home) -> None:
    first = _run(sample_home)
    _run(sample_home)
    home = ["--home", str(sample_home.root)]
    latest = runner.invoke(app, ["receipts", "show", *home, "--json"])
    chosen = runner.invoke(
        app, ["receipts", "show", *home, "--run-id", first.summary.run_id, "--json"]
    )
    assert orjson.loads(chosen.stdout)["run_id"] == first.summary.run_id
    assert orjson.loads(latest.stdout)["run_id"] != first.summary.run_id
    human = runner.invoke(app, ["receipts", "show", *home])
    assert human.exit_code == 0 and "export_preference" in human.stdout
    missing = runner.invoke(app, ["receipts", "show", *home, "--run-id", "nope"])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.stderr


def test_acceptance_passes_and_writes_its_report(home: Home) -> None:
    result = runner.invoke(app, ["acceptance", "--home", str(home.root)])
    assert result.exit_code == 0, result.stderr
    report = (home.reports_dir / "acceptance-report.md").read_text()
    assert "**PASSED**" in report and "| FAIL |" not in report


def test_expected_json_is_read_into_its_model_and_a_misspelt_key_is_an_error(
    tmp_path: Path,
) -> None:
    committed = load_expectations(DEFAULT_FIXTURE)
    assert committed is not None and committed.preference_pairs and committed.categories
    expected = orjson.loads((DEFAULT_FIXTURE / "expected.json").read_bytes())
    expected["quarantined"] = expected.pop("quarantine")
    (tmp_path / "expected.json").write_bytes(orjson.dumps(expected))
    with pytest.raises(DistillError, match="quarantined"):
        load_expectations(tmp_path)


def _failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    monkeypatch.setattr(export_datasets, "reread_check", lambda *a, **k: lambda path: None)
    report = run_acceptance(workdir=tmp_path)
    assert not report.passed
    return {
        c.name.removeprefix("run1: ").removeprefix("run2: ") for c in report.checks if not c.passed
    }


def test_acceptance_catches_a_rejected_row_in_sft(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def leaky(model: Any, payload: dict[str, Any], export: str) -> bytes:
        # past the type wall too: only acceptance is left to notice
        return canonical_json(payload) + b"\n"

    monkeypatch.setattr(export_datasets, "sft_policy", lambda allowed: lambda record: None)
    monkeypatch.setattr(export_datasets, "sample_line", leaky)
    assert _failed(monkeypatch, tmp_path) == {"SFT holds only accepted"}


def test_acceptance_catches_a_self_pair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = export_preference._sample
    monkeypatch.setattr(export_preference, "reread_check", lambda *a, **k: lambda path: None)
    monkeypatch.setattr(
        export_preference,
        "_sample",
        lambda chosen, rejected, recorded_at: original(chosen, chosen, recorded_at),
    )
    # the rejected sides vanish from the export without a quarantine entry: accounting notices
    assert _failed(monkeypatch, tmp_path) == {
        "row accounting balances at every stage",
        "preference has no self-pair",
        "preference has no identical chosen/rejected",
        "preference pairs are exactly the expected ones",
    }


def test_acceptance_catches_a_nondeterministic_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counter = itertools.count()
    monkeypatch.setattr(export_datasets, "title_of", lambda text: f"{text[:20]} #{next(counter)}")
    assert _failed(monkeypatch, tmp_path) == {
        "per-stage output hashes identical across runs",
        "run_hash identical across runs",
        "second run's drift is ok",
    }


def test_acceptance_catches_a_dropped_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = collect_module.evidence_line

    def drop_one(payload: Any) -> bytes:
        return b"" if payload["id"] == "mode_experiments:EXP-0005" else original(payload)

    monkeypatch.setattr(collect_module, "evidence_line", drop_one)
    assert _failed(monkeypatch, tmp_path) == {
        "row accounting balances at every stage",
        "every fixture row has its expected category",
    }


def test_different_outputs_after_a_code_change_warn_instead(sample_home: Home) -> None:
    first = _run(sample_home).summary
    tampered = [
        r.model_copy(update={"output_hash": "0" * 64, "code_hash": "1" * 64})
        if r.stage == "score"
        else r
        for r in first.stages
    ]
    previous = first.model_copy(update={"stages": tampered, "run_id": "earlier"})
    drift = compare_runs(first, previous, 0.2)
    assert drift.level == "warn"
    assert [(f.stage, f.kind) for f in drift.findings] == [("score", "code_change")]
