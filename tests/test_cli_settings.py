"""The CLI's shared vocabulary: the options every command resolves the same way, and their edges
(dry runs that write nothing, exit codes, the environment behind a flag, --json shapes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from distill import settings
from distill.cli import app
from distill.errors import DistillError
from distill.home import Home
from distill.index import PlaybookStore
from distill.index.store import IndexReport
from distill.stage_report import StageReport

from .conftest import copy_home

runner = CliRunner()


@pytest.fixture
def sample(pristine: Home, tmp_path: Path) -> Home:
    """A copy of the sample home after run-all: exports and an index built with hash-384."""
    return copy_home(pristine, tmp_path)


def test_index_build_dry_run_reports_what_it_would_embed_and_writes_nothing(
    sample: Home, tmp_path: Path
) -> None:
    fresh = tmp_path / "new-index"
    args = ["--home", str(sample.root), "--embedder", "hash-384", "--json", "--dry-run"]
    built = runner.invoke(app, ["index", "build", *args, "--index-dir", str(fresh)])
    assert built.exit_code == 0, built.stderr
    report = orjson.loads(built.stdout)
    rows = report["records_in"]
    assert report["dry_run"] is True and rows > 0 and report["index"]["embedded"] == rows
    assert not fresh.exists()  # not even an empty database folder
    manifest = PlaybookStore(str(sample.index_dir)).manifest_path
    before = manifest.stat().st_mtime_ns
    updated = runner.invoke(app, ["index", "update", *args])
    assert updated.exit_code == 0, updated.stderr
    assert orjson.loads(updated.stdout)["index"]["embedded"] == 0  # nothing changed since
    assert "would embed 0" in updated.stderr and manifest.stat().st_mtime_ns == before


@pytest.mark.parametrize("verb", ["build", "update"])
def test_index_build_and_update_exit_1_when_their_report_fails(
    sample: Home, verb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*_: Any, **__: Any) -> tuple[StageReport, IndexReport]:
        report = StageReport("index", records_in=2, records_out=1)  # a row lost
        return report.close(), IndexReport()

    monkeypatch.setattr("distill.cli.index.index_export", failing)
    result = runner.invoke(app, ["index", verb, "--home", str(sample.root), "--embedder", "hash-8"])
    assert result.exit_code == 1 and "failed its own checks" in result.stderr


def test_index_search_json_is_what_post_v1_search_answers(sample: Home) -> None:
    from distill.index.search import search_payload

    args = ["index", "search", "payments webhook", "--home", str(sample.root), "--top-k", "2"]
    found = runner.invoke(app, [*args, "--mode", "vector", "--json"])
    assert found.exit_code == 0, found.stderr
    payload = orjson.loads(found.stdout)
    assert set(payload) == {"index_version", "mode", "hits"} and payload["mode"] == "vector"
    assert [hit["rank"] for hit in payload["hits"]] == [1, 2]
    index = settings.index_settings(sample, {})
    hits = index.retriever().search("payments webhook", mode="vector", top_k=2)
    assert payload == orjson.loads(
        orjson.dumps(search_payload(payload["index_version"], "vector", hits))
    )
    bogus = runner.invoke(app, [*args, "--fusion", "sum"])
    assert bogus.exit_code == 2 and "sum" in bogus.stderr  # a closed choice, checked by typer


def test_the_environment_fills_a_flag_but_is_not_a_server_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISTILL_MODEL_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DISTILL_REPLAY_DEADLINE", "5")
    server = f"http://127.0.0.1:{free_port()}"
    args = ["replay", "--task", "fix the webhook", "--server", server]
    from_env = runner.invoke(app, args)  # DISTILL_HOME (conftest) and the two above are set
    assert from_env.exit_code == 1 and "cannot be combined" not in from_env.stderr
    flagged = runner.invoke(app, [*args, "--deadline", "5", "--home", str(tmp_path)])
    said = " ".join(flagged.stderr.split())
    assert flagged.exit_code == 1 and "--home, --deadline cannot be combined" in said


def test_eval_replay_takes_a_prompt_style(
    sample: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"task": "fix the webhook", "relevant_ids": []}\n')
    seen: dict[str, Any] = {}
    resolve = settings.local_model

    def local_model(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        resolve(*args, **kwargs)
        raise DistillError("stop here: the settings are what this test checks")

    monkeypatch.setattr(settings, "local_model", local_model)
    args = ["eval", "replay", "--tasks", str(tasks), "--home", str(sample.root)]
    result = runner.invoke(app, [*args, "--prompt-style", "completion"])
    assert result.exit_code == 1 and seen["prompt_style"] == "completion"
    assert runner.invoke(app, [*args, "--prompt-style", "prose"]).exit_code == 2


def test_release_freeze_names_a_release_with_name_not_version() -> None:
    refused = runner.invoke(app, ["release-freeze", "--version", "v1"])
    assert refused.exit_code == 2 and "--version" in refused.stderr
    assert runner.invoke(app, ["--version"]).stdout.startswith("distill ")


def test_a_section_nothing_reads_fails_the_command_with_a_hint(home: Home) -> None:
    home.config_path.write_text("[index]\nembedder = 'hash-384'\n", encoding="utf-8")
    result = runner.invoke(app, ["collect", "--home", str(home.root)])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 1 and "no [index] section" in said and "DISTILL_EMBEDDER" in said


def test_serve_json_prints_where_it_listens_once_warm(sample: Home) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    command = [sys.executable, "-c", "from distill.cli import main; main()", "serve", "--json"]
    command += ["--home", str(sample.root), "--port", str(port)]
    command += ["--model-url", "http://127.0.0.1:9/v1", "--min-relevance", "0.5"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the index and the model are loaded
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    served = json.loads(line)
    assert served["url"] == f"http://127.0.0.1:{port}" and served["auth"] == "none", err
    rows = PlaybookStore(str(sample.index_dir)).require_manifest().rows
    assert served["index"]["rows"] == rows and served["index"]["embedder"] == "hash-384"
    assert served["home"] == str(sample.root) and served["min_relevance"] == 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
