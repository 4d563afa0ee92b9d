"""Every log format end to end: run-all, search, a dry-run replay, audit-full, recon.

On the repository's own fixture (fixtures/formats/) always; on the real public logs in
../shared/real-logs/ (see its README) whenever that folder is there, as CI has it. Nothing from
the real logs is copied here: the tests read them in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.runs import RunOptions, RunResult, run_all

from .conftest import FIXTURES, RECORDED_AT, read_jsonl

runner = CliRunner()
REAL_LOGS = Path(__file__).resolve().parents[2] / "shared" / "real-logs"
needs_real_logs = pytest.mark.skipif(
    not (REAL_LOGS / "README.md").is_file(), reason=f"no real logs at {REAL_LOGS}"
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run(home: Home) -> RunResult:
    options = RunOptions(recorded_at=RECORDED_AT, embedder="hash-384")
    return run_all(home, load_config(home.config_path), options)


def categories(home: Home, stream: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in read_jsonl(home.scored_dir / f"{stream}.jsonl"):
        counts[row["category"]] = counts.get(row["category"], 0) + 1
    return counts


def search_first(home: Home, query: str) -> str:
    code, out, err = invoke("index", "search", query, "--home", str(home.root), "--json")
    assert code == 0, err
    payload: Any = orjson.loads(out)
    return str(payload["hits"][0]["id"])


def dry_run(home: Home, task: str) -> dict[str, Any]:
    code, out, err = invoke(
        "replay", "--home", str(home.root), "--task", task, "--dry-run", "--json"
    )
    assert code == 0, err
    result: dict[str, Any] = orjson.loads(out)
    return result


def audit(home: Home, *extra: str) -> None:
    args = [
        "audit-full",
        "--home",
        str(home.root),
        "--embedder",
        "hash-384",
        "--skip",
        "acceptance",
        *extra,
    ]
    code, _, err = invoke(*args)
    assert code == 0, err


# --- the repository's own fixture --------------------------------------------------------------


@pytest.fixture(scope="module")
def formats_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("formats") / "home"
    shutil.copytree(FIXTURES / "formats", root)
    home = Home(root.resolve())
    result = run(home)
    assert result.summary.passed and not result.summary.warnings
    return home


def test_the_fixture_runs_end_to_end(formats_home: Home) -> None:
    assert search_first(formats_home, "Widget.resize drops the aspect ratio") == (
        "swe:acme__widgets-101"
    )
    assert search_first(formats_home, "Should the cart round each line or the total?") == (
        "chat:chatcmpl-001"
    )
    bundle = dry_run(formats_home, "Widget.resize drops the aspect ratio")["bundle"]
    assert [p["id"] for p in bundle["exemplars"]][0] == "swe:acme__widgets-101"
    audit(formats_home)


def test_recon_names_formats_and_what_will_need_review(formats_home: Home) -> None:
    code, out, err = invoke("recon", "--home", str(formats_home.root), "--json")
    assert code == 0, err
    by_source = {item["stream"]: item for item in orjson.loads(out)}
    assert {s: by_source[s]["format"] for s in ("swe", "sweagent", "claude", "chat", "events")} == {
        "swe": "mini_swe_agent",
        "sweagent": "swe_agent",
        "claude": "claude_code",
        "chat": "openai_chat",
        "events": "jsonl",
    }
    assert (by_source["swe"]["files"], by_source["swe"]["rows"]) == (5, 5)
    assert by_source["claude"]["notes"] == [
        'no verdict source: 1 records will need review — add `verdicts = "<glob>"` '
        "(or verdict_field) to [sources.claude]"
    ]
    assert by_source["swe"]["verdict_source"] == "verdicts 'runs/logs/*/report.json' (2 ids)"
    human = invoke("recon", "--home", str(formats_home.root))
    assert "no verdict source" in human[2] and "claude" in human[1]


def test_an_index_that_ends_empty_is_a_warning_not_a_silent_pass(tmp_path: Path) -> None:
    home = Home(tmp_path.resolve())
    shutil.copytree(FIXTURES / "formats" / "runs", tmp_path / "runs")
    (tmp_path / "distill.toml").write_text(
        '[sources.swe]\nformat = "mini_swe_agent"\n'
        'path = "runs/trajs/*/acme__gadgets-8.traj.json"\n'
    )
    code, _, err = invoke(
        "run-all", "--home", str(home.root), "--embedder", "hash-384", "--recorded-at", RECORDED_AT
    )
    assert code == 0
    assert "passed with 1 warning(s)" in err and "warning: the index is empty" in err
    [summary_md] = home.reports_dir.glob("*/summary.md")
    text = summary_md.read_text()
    assert "PASSED with 1 warning(s)" in text and "## Warnings" in text
    assert "scored: 1 needs_human_review" in text


def test_documents_read_as_lines_say_which_format_to_use(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "formats" / "runs", tmp_path / "runs")
    (tmp_path / "distill.toml").write_text(
        '[sources.swe]\npath = "runs/trajs/**/*.traj.json"\nid_field = "instance_id"\n'
        'time_field = "created"\ninstruction_field = "x"\nresponse_field = "info.submission"\n'
    )
    code, _, err = invoke("collect", "--home", str(tmp_path), "--recorded-at", RECORDED_AT)
    assert code == 0
    assert "units skipped" in err and 'format = "mini_swe_agent"' in err.replace("\n", "")


# --- the real public logs (../shared/real-logs) -------------------------------------------------


@pytest.fixture(scope="module")
def real_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("real") / "home"
    root.mkdir()
    swe, claude = REAL_LOGS / "mini-swe-agent", REAL_LOGS / "claude-code"
    (root / "distill.toml").write_text(
        f'[sources.swe]\nformat = "mini_swe_agent"\npath = "{swe}/trajs/**/*.traj.json"\n'
        f'verdicts = "{swe}/logs/*/report.json"\n\n'
        f'[sources.claude]\nformat = "claude_code"\npath = "{claude}/**/transcript.jsonl"\n'
    )
    home = Home(root.resolve())
    result = run(home)
    assert result.summary.passed and not result.summary.warnings
    return home


@needs_real_logs
@pytest.mark.slow
def test_real_trajectories_and_sessions_score_by_their_reports_and_rules(real_home: Home) -> None:
    assert categories(real_home, "swe") == {"accepted": 23, "rejected": 8}  # 23 resolved
    assert categories(real_home, "claude") == {"partially_accepted": 2, "needs_human_review": 3}
    assert not real_home.skips_path.read_bytes()  # every line of every file is in a record
    for row in read_jsonl(real_home.evidence_dir / "swe.jsonl"):
        assert row["provenance"]["pointer"] == "" and row["created_at"].startswith("2025-11-")
        assert row["instruction"] and row["response"].startswith("diff --git")
        assert not any(p.startswith(("a/", "b/")) for p in row["file_paths"])


@needs_real_logs
@pytest.mark.slow
def test_real_logs_search_replay_and_audit(real_home: Home) -> None:
    playbooks = read_jsonl(real_home.export_path("rag"))
    assert len(playbooks) == 25
    for playbook in playbooks:  # each run is found first by its issue's title
        title = playbook["instruction"].strip().splitlines()[0]
        assert search_first(real_home, title) == playbook["id"], title
    accepted = [p for p in playbooks if p["category"] == "accepted"]
    short = min(accepted, key=lambda p: len(p["instruction"]))["instruction"]
    bundle = dry_run(real_home, short)["bundle"]
    assert bundle["exemplars"] and bundle["messages"]
    # the default fixed task is the first accepted playbook's own instruction, a 4.8 KB issue:
    # its exemplar is cut to fit the budget, never dropped, so the audit's dry run retrieves it
    audit(real_home)
