"""The pipeline as a user drives it: through the CLI, on good, garbage and missing input."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.home import Home

from .conftest import RECORDED_AT, read_jsonl, write_stream

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _small_corpus(home: Home) -> None:
    write_stream(
        home,
        "scrum_reviews",
        [
            {
                "review_id": "SR-1",
                "reviewed_at": "2026-02-01T10:00:00Z",
                "task_id": "T1",
                "file": "src/app.py",
                "review": "Looks right.\n- verify the handler returns 200",
                "verdict": "accepted",
                "attempts": 1,
            },
            {
                "review_id": "SR-2",
                "reviewed_at": "2026-02-01T11:00:00Z",
                "task_id": "T1",
                "file": "src/app.py",
                "review": "Skips the tests entirely.",
                "verdict": "rejected",
            },
            "{not json",
        ],
    )
    write_stream(
        home,
        "audits",
        [
            {
                "audit_id": "AUD-1",
                "created_at": "2026-02-02T09:00:00Z",
                "task_id": "T2",
                "topic": "Token logging",
                "severity": "low",
                "finding": "Tokens are masked.",
            },
            {"created_at": "2026-02-02T09:00:00Z", "topic": "no id", "severity": "low"},
        ],
    )


def _pipeline(home: Home, *extra: str) -> list[tuple[int, str, str]]:
    common = ["--home", str(home.root), "--recorded-at", RECORDED_AT, *extra]
    return [invoke("collect", *common), invoke("score", *common), invoke("export", "all", *common)]


def test_pipeline_writes_every_output_and_reports_on_stderr(home: Home) -> None:
    _small_corpus(home)
    results = _pipeline(home)
    assert [code for code, _, _ in results] == [0, 0, 0]
    collect_err = results[0][2]
    assert "collect ok: in 5, out 3, skipped 2" in collect_err
    assert "invalid_json 1" in collect_err and "missing_id 1" in collect_err
    sft_ids = [row["id"] for row in read_jsonl(home.export_path("sft"))]
    assert sft_ids == ["audits:AUD-1", "scrum_reviews:SR-1"]
    assert len(read_jsonl(home.export_path("preference"))) == 1
    skips = read_jsonl(home.skips_path)
    assert {(s["stream"], s["line"], s["reason"]) for s in skips} == {
        ("scrum_reviews", 3, "invalid_json"),
        ("audits", 2, "missing_id"),
    }


def test_json_flag_prints_the_machine_result_on_stdout(home: Home) -> None:
    _small_corpus(home)
    code, out, _ = invoke("collect", "--home", str(home.root), "--json")
    assert code == 0
    payload = orjson.loads(out)
    assert payload["stage"] == "collect"
    assert payload["records_in"] == payload["records_out"] + sum(payload["skipped"].values())
    code, out, _ = invoke("score", "--home", str(home.root), "--json")
    code, out, _ = invoke("export", "all", "--home", str(home.root), "--json")
    stages = [report["stage"] for report in orjson.loads(out)]
    assert stages == ["export_rag", "export_sft", "export_preference"]


def test_home_comes_from_the_environment_when_no_flag(home: Home) -> None:
    _small_corpus(home)
    code, _, _ = invoke("collect", env={"DISTILL_HOME": str(home.root)})
    assert code == 0
    assert (home.evidence_dir / "audits.jsonl").exists()


def test_garbage_only_home_exits_zero_with_everything_in_skips(home: Home) -> None:
    garbage: list[bytes | str] = ["{", "[1, 2]", b"\xff\xfe{}", '"a string"', "{}", "null"]
    write_stream(home, "audits", garbage)
    write_stream(home, "outcomes", garbage)
    results = _pipeline(home)
    assert [code for code, _, _ in results] == [0, 0, 0]
    assert len(read_jsonl(home.skips_path)) == 2 * len(garbage)
    for export in ("rag", "sft", "preference"):
        assert home.export_path(export).read_bytes() == b""


def test_dry_run_writes_nothing(home: Home) -> None:
    _small_corpus(home)
    code, _, err = invoke("collect", "--home", str(home.root), "--dry-run")
    assert code == 0 and "dry run" in err
    assert not home.evidence_dir.exists() and not home.skips_path.exists()


def test_score_before_collect_fails_with_a_hint(home: Home) -> None:
    code, _, err = invoke("score", "--home", str(home.root))
    assert code == 1
    assert "no evidence" in err and "distill collect" in err


def test_bad_recorded_at_is_refused(home: Home) -> None:
    code, _, err = invoke("collect", "--home", str(home.root), "--recorded-at", "yesterday")
    assert code == 1 and "ISO-8601" in err


def test_repo_root_must_exist(home: Home, tmp_path: Path) -> None:
    _small_corpus(home)
    _pipeline(home)
    code, _, _ = invoke(
        "export", "rag", "--home", str(home.root), "--repo-root", str(tmp_path / "nope")
    )
    assert code != 0


def test_invalid_config_names_the_field(home: Home) -> None:
    home.config_path.write_text('[sources.tickets]\nid_field = "id"\n')
    code, _, err = invoke("collect", "--home", str(home.root))
    assert code == 1
    assert "sources.tickets" in err and "time_field" in err


def test_unknown_stream_is_reported_not_collected(home: Home) -> None:
    write_stream(home, "tickets", [{"id": 1}])
    code, _, err = invoke("collect", "--home", str(home.root))
    assert code == 0
    assert "[sources.tickets]" in err


def test_recon_lists_streams_with_gaps(home: Home) -> None:
    _small_corpus(home)
    code, out, _ = invoke("recon", "--home", str(home.root), "--json")
    assert code == 0
    by_stream = {item["stream"]: item for item in orjson.loads(out)}
    assert by_stream["audits"]["rows"] == 2
    assert by_stream["audits"]["missing_provenance_rate"] == 0.5
    assert by_stream["scrum_reviews"]["bad_rows_by_reason"] == {"invalid_json": 1}
    assert by_stream["scrum_reviews"]["field_coverage"]["verdict"] == 1.0


def test_debug_env_shows_the_traceback(home: Home) -> None:
    result = runner.invoke(
        app, ["score", "--home", str(home.root)], env={**os.environ, "DISTILL_DEBUG": "1"}
    )
    assert result.exit_code == 1
    assert result.exception is not None
    assert type(result.exception).__name__ == "InputMissingError"


@pytest.mark.parametrize("command", [["collect"], ["score"], ["export", "all"], ["recon"]])
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0 and "--home" in out
