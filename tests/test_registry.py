"""The stage registry: run-all and its dry run follow it, and a dry run writes nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.index import HashingEmbedder
from distill.index.stage import index_export
from distill.runs import RunOptions, latest_summary, run_all
from distill.stages import StageContext, StageReport, pipeline, registry

from .conftest import FIXTURES, RECORDED_AT, copy_home

runner = CliRunner()


def _files(home: Home) -> dict[str, str]:
    """Every file under the home with its sha256: what a dry run must leave as it was."""
    return {
        str(path.relative_to(home.root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.root.rglob("*"))
        if path.is_file()
    }


def _dry_run(home: Home, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(
        app,
        [
            "run-all",
            "--dry-run",
            "--json",
            "--home",
            str(home.root),
            "--recorded-at",
            RECORDED_AT,
            "--embedder",
            "hash-384",
            *extra,
        ],
    )
    payload = orjson.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, payload, result.stderr


def test_run_all_runs_what_the_registry_lists(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage added to the registry is run, receipted and previewed with no other change."""
    seen: list[StageContext] = []

    def extra(context: StageContext) -> StageReport:
        seen.append(context)
        return StageReport("extra", dry_run=context.dry_run).close()

    shutil.copytree(FIXTURES / "sample" / "data", home.root / "data", dirs_exist_ok=True)
    first_two = registry.STAGES[:2]
    monkeypatch.setattr(registry, "STAGES", (*first_two, registry.Stage("extra", extra)))
    options = RunOptions(recorded_at=RECORDED_AT, index=False)
    result = run_all(home, load_config(home.config_path), options)
    assert [r.stage for r in result.summary.stages] == ["collect", "score", "extra"]
    assert result.summary.passed and (result.folder / "extra.json").is_file()
    assert seen[-1].recorded_at == RECORDED_AT and not seen[-1].dry_run
    code, payload, _ = _dry_run(home, "--no-index")
    assert code == 0, payload
    assert [s["stage"] for s in payload["stages"]] == ["collect", "score", "extra"]
    assert seen[-1].dry_run


def test_dry_run_after_a_run_previews_every_stage_and_writes_nothing(
    pristine: Home, tmp_path: Path
) -> None:
    home = copy_home(pristine, tmp_path)
    before = _files(home)
    code, payload, stderr = _dry_run(home, "--repo-root", str(FIXTURES / "sample" / "repo"))
    assert code == 0, stderr
    assert _files(home) == before  # no receipts, no lock, no export, no index version
    stages = payload["stages"]
    assert [s["stage"] for s in stages] == [stage.name for stage in pipeline()]
    assert all(s["dry_run"] and s["passed"] for s in stages)
    assert payload["not_previewed"] == []
    last = latest_summary(home)
    assert last is not None
    receipts = {r.stage: r.counts for r in last.stages}
    for preview in stages[1:]:  # collect reads the streams, which the replay log grew since
        counts = receipts[preview["stage"]]
        assert counts is not None
        assert (preview["records_in"], preview["records_out"]) == (
            counts.records_in,
            counts.records_out,
        ), preview["stage"]
    index = stages[-1]
    assert index["params"]["action"] == "update" and index["embedded"] == 0


def test_dry_run_on_a_new_home_stops_where_input_is_missing(home: Home) -> None:
    shutil.copytree(FIXTURES / "sample" / "data", home.root / "data", dirs_exist_ok=True)
    before = _files(home)
    code, payload, stderr = _dry_run(home)
    assert code == 0, stderr
    assert _files(home) == before
    assert not home.evidence_dir.exists() and not home.index_dir.exists()
    assert [s["stage"] for s in payload["stages"]] == ["collect"]
    skipped = {s["stage"]: s["reason"] for s in payload["not_previewed"]}
    assert list(skipped) == [stage.name for stage in pipeline()][1:]
    assert "no evidence" in skipped["score"] and "not reached" in skipped["index"]
    assert "score not previewed" in stderr


def test_index_dry_run_creates_no_database(pristine: Home, tmp_path: Path) -> None:
    home = copy_home(pristine, tmp_path)
    shutil.rmtree(home.index_dir)
    report, plan = index_export(home, str(home.index_dir), HashingEmbedder(), dry_run=True)
    assert not home.index_dir.exists()
    assert report.passed and report.dry_run and report.params["action"] == "build"
    assert plan.embedded == plan.inserted == report.records_in == report.records_out > 0
    assert report.checks["index_matches_export"] == "skipped (dry run)"
