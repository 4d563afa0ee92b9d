"""release-freeze: a release is a manifest of hashes, written only when every gate holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.index import PlaybookStore
from distill.jsonio import file_sha256
from distill.runs.acceptance import AcceptanceReport
from distill.runs.audit import AuditOptions, acceptance_in_tmp
from distill.runs.release import ReleaseResult, release_freeze
from distill.schemas import DriftReport, ReleaseManifest

from .conftest import copy_home, read_jsonl

runner = CliRunner()
OPTIONS = AuditOptions(embedder="hash-384")


@pytest.fixture(scope="module")
def accepted() -> AcceptanceReport:
    """One acceptance run shared by the module (release-freeze's own is tested by the CLI)."""
    return acceptance_in_tmp()


@pytest.fixture
def release_home(pristine: Home, tmp_path: Path) -> Home:
    return copy_home(pristine, tmp_path)


def _git(home: Home, *args: str) -> str:
    identity = ["-c", "user.name=distill tests", "-c", "user.email=tests@distill.invalid"]
    done = subprocess.run(
        ["git", "-C", str(home.root), *identity, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _commit_all(home: Home) -> str:
    _git(home, "init", "-q", "-b", "main")
    (home.root / ".gitignore").write_text("/reports/\n/data/_kb/audit_baselines.jsonl*\n")
    _git(home, "add", "-A")
    _git(home, "commit", "-q", "-m", "data")
    return _git(home, "rev-parse", "HEAD")


def _freeze(home: Home, accepted: AcceptanceReport) -> ReleaseResult:
    return release_freeze(home, load_config(home.config_path), OPTIONS, acceptance=lambda: accepted)


def test_a_clean_committed_home_freezes_into_a_manifest_of_hashes(
    release_home: Home, accepted: AcceptanceReport
) -> None:
    sha = _commit_all(release_home)
    result = _freeze(release_home, accepted)
    assert result.passed, [g for g in result.gates if not g.passed]
    assert result.manifest_path is not None
    manifest = ReleaseManifest.model_validate_json(result.manifest_path.read_bytes())
    assert manifest.git_sha == sha and manifest.run_hash.startswith(manifest.version[5:])
    for dataset in manifest.datasets:
        path = release_home.root / dataset.path
        assert dataset.sha256 == file_sha256(path)
        assert dataset.records == len(read_jsonl(path))
    assert {d.name for d in manifest.datasets} == {"rag", "sft", "preference"}
    index = PlaybookStore(str(release_home.index_dir)).require_manifest()
    assert (manifest.index.version, manifest.index.rows) == (index.version, index.rows)
    assert manifest.index.embedder == index.embedder and manifest.index.uri == "index"
    assert [g.name for g in manifest.gates] == [
        "acceptance passed",
        "audit-full required checks passed",
        "index in sync with the RAG export",
        "the latest run's receipts are valid",
        "working tree clean",
        "no determinism alert in the latest drift",
    ]
    assert f"tag -a {manifest.version} {sha}" in manifest.tag_command
    assert _git(release_home, "tag", "--list") == ""  # printed for the operator, never run
    md = (release_home.reports_dir / "release-freeze.md").read_text()
    assert "**FROZEN**" in md and manifest.tag_command in md


def test_a_dirty_tree_is_refused_and_no_manifest_is_written(
    release_home: Home, accepted: AcceptanceReport
) -> None:
    _commit_all(release_home)
    assert _freeze(release_home, accepted).passed  # an earlier release…
    (release_home.root / "notes.txt").write_text("uncommitted\n")
    result = _freeze(release_home, accepted)
    failed = [g for g in result.gates if not g.passed]
    assert [g.name for g in failed] == ["working tree clean"]
    assert "notes.txt" in failed[0].detail
    assert (
        result.manifest is None
        and not (release_home.reports_dir / "release-manifest.json").exists()
    )
    # …is kept under another name, so no release-manifest.json claims this refused state
    assert (release_home.reports_dir / "release-manifest.previous.json").is_file()
    assert "**REFUSED**" in (release_home.reports_dir / "release-freeze.md").read_text()


def test_a_git_that_cannot_read_the_tree_is_not_taken_for_a_clean_one(
    release_home: Home, accepted: AcceptanceReport
) -> None:
    _commit_all(release_home)
    (release_home.root / ".git" / "index").write_bytes(b"not an index")
    result = _freeze(release_home, accepted)
    tree = next(g for g in result.gates if g.name == "working tree clean")
    assert not tree.passed and "git status failed" in tree.detail
    assert result.manifest is None


def test_a_failed_gate_is_refused_by_name_with_exit_code_1(release_home: Home) -> None:
    # Not in git: the tree gate reports "not checked"; the corrupted SFT export fails the audit.
    sft = release_home.export_path("sft")
    rows = read_jsonl(sft)
    sft.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*rows, {**rows[0], "id": "x:1"}]))
    result = runner.invoke(
        app, ["release-freeze", "--home", str(release_home.root), "--embedder", "hash-384"]
    )
    assert result.exit_code == 1
    assert "release refused" in result.stderr
    assert "audit-full required checks passed" in result.stderr
    assert "the latest run's receipts are valid" in result.stderr
    assert not (release_home.reports_dir / "release-manifest.json").exists()


def test_a_determinism_alert_in_the_latest_drift_is_refused(
    release_home: Home, accepted: AcceptanceReport
) -> None:
    drift_path = next(release_home.reports_dir.glob("*/drift.json"))
    drift = DriftReport.model_validate_json(drift_path.read_bytes())
    alert = drift.model_copy(update={"level": "alert", "message": "same inputs, other outputs"})
    drift_path.write_text(alert.model_dump_json(by_alias=True))
    result = _freeze(release_home, accepted)
    assert [g.name for g in result.gates if not g.passed] == [
        "no determinism alert in the latest drift"
    ]


def test_the_cli_freezes_and_prints_the_tag_command(release_home: Home) -> None:
    sha = _commit_all(release_home)
    result = runner.invoke(
        app,
        ["release-freeze", "--home", str(release_home.root), "--embedder", "hash-384",
         "--name", "v2026.11-data"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().startswith("git -C ")
    assert f"tag -a v2026.11-data {sha}" in result.stdout
    manifest = ReleaseManifest.model_validate_json(
        (release_home.reports_dir / "release-manifest.json").read_bytes()
    )
    assert manifest.version == "v2026.11-data" and all(g.passed for g in manifest.gates)
