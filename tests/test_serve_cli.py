"""distill serve and distill replay --server, through the CLI: the real command in its own
process (SIGTERM, logs), the --server client against the module's served app, the bind check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from distill.cli import app
from distill.home import Home
from distill.replay import RetryPolicy
from distill.replay.remote import ServerError, replay_remote
from distill.schemas import ReplayRequest, ReplayRun
from distill.serve import ServeSettings, ServeState, check_settings

from .helpers.answers import HEDGE, TASK
from .helpers.models import FakeSleep
from .helpers.replay import SampleIndex, log_lines
from .helpers.serve import MAX_TASK, TOKEN, logged
from .helpers.upstream import FakeUpstream, closed_port

runner = CliRunner()

# --- distill replay --server -------------------------------------------------------------------


def test_cli_replay_server_prints_what_local_mode_prints(url: str, state: ServeState) -> None:
    result = runner.invoke(app, ["replay", "--server", url, "--task", TASK, "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    run = ReplayRun.model_validate_json(result.stdout)
    assert run.verdict == "dry_run" and run.run_id not in logged(state)  # nothing written
    human = runner.invoke(app, ["replay", "--server", url, "--task", TASK, "--dry-run"])
    assert human.exit_code == 0 and f"Task: {TASK}" in human.stdout
    assert "no model called" in human.stderr
    passed = runner.invoke(app, ["replay", "--server", f"{url}/v1/", "--task", TASK])
    assert passed.exit_code == 0 and "gate:" in passed.stderr and "passed" in passed.stderr
    failed = runner.invoke(app, ["replay", "--server", url, "--task", f"hedge: {TASK}"])
    assert failed.exit_code == 2 and failed.stdout.strip() == HEDGE
    assert "no_hedging" in failed.stderr


def test_cli_replay_server_refuses_the_servers_own_settings(url: str) -> None:
    result = runner.invoke(
        app, ["replay", "--server", url, "--task", TASK, "--model-url", "http://x"]
    )
    said = " ".join(result.stderr.split())  # rich wraps long lines
    assert result.exit_code == 1 and "--model-url cannot be combined with --server" in said
    assert "set them on `distill serve`" in said


def test_cli_replay_server_errors_say_what_the_server_said(url: str) -> None:
    result = runner.invoke(app, ["replay", "--server", url, "--task", "x" * (MAX_TASK + 1)])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 1 and "over the limit of 2,000" in said and "status 422" in said
    assert "--max-task-chars" in said  # the server's hint


def test_an_unreachable_server_is_retried_then_reported() -> None:
    sleep = FakeSleep()
    with pytest.raises(ServerError) as caught:
        replay_remote(
            f"http://127.0.0.1:{closed_port()}",
            ReplayRequest(task=TASK),
            retry=RetryPolicy(sleep=sleep),
        )
    assert caught.value.attempts == 3 and len(sleep.delays) == 2
    assert "distill serve" in caught.value.hint


def test_replay_server_path_loads_no_model_library(url: str) -> None:
    probe = (
        "import sys\n"
        "from distill.cli import app\n"
        "try:\n"
        f"    app(['replay', '--server', {url!r}, '--task', 'tax rates', '--dry-run', '--json'])\n"
        "except SystemExit as done:\n"
        "    heavy = sorted({'torch', 'sentence_transformers', 'llama_cpp', 'lancedb', 'fastapi'}"
        " & set(sys.modules))\n"
        "    print('HEAVY', heavy, done.code, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY [] 0" in done.stderr, done.stderr
    assert ReplayRun.model_validate_json(done.stdout).verdict == "dry_run"


def test_binding_beyond_loopback_needs_a_long_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_API_TOKEN", raising=False)
    refused = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", str(closed_port())])
    assert refused.exit_code == 1 and "DISTILL_API_TOKEN" in refused.stderr
    monkeypatch.setenv("DISTILL_API_TOKEN", "short")
    short = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert short.exit_code == 1 and "at least 16" in short.stderr and "short" not in short.stderr
    check_settings(ServeSettings(host="0.0.0.0", token=SecretStr(TOKEN)))
    check_settings(ServeSettings(host="::1"))


def test_sigterm_lets_requests_in_flight_finish_and_loses_no_log_line(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    """The real CLI in its own process, a model server that takes 0.25 s an answer, six replays
    queued behind it, SIGTERM while they wait: all six answer 200 and are logged, whole."""
    home = Home(tmp_path.resolve())
    home.kb_dir.mkdir(parents=True)
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    good = {"Authorization": f"Bearer {TOKEN}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    env["DISTILL_API_TOKEN"] = TOKEN
    results: list[httpx.Response] = []
    with FakeUpstream(answer="Add the key, then verify a replayed event.") as model_server:
        model_server.script.extend([0.25] * 6)
        command = [sys.executable, "-c", "from distill.cli import main; main()", "serve"]
        command += ["--home", str(home.root), "--index-dir", sample_index.uri, "--port", str(port)]
        command += ["--model-url", model_server.url, "--model", "m"]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until(lambda: httpx.get(base + "/healthz", headers=good).status_code == 200)
            threads = [
                threading.Thread(
                    target=lambda n=n: results.append(
                        httpx.post(
                            base + "/v1/replay",
                            json={"task": f"{TASK} #{n}"},
                            headers=good,
                            timeout=60,
                        )
                    )
                )
                for n in range(6)
            ]
            for thread in threads:
                thread.start()
            stats = base + "/v1/stats"
            wait_until(lambda: httpx.get(stats, headers=good).json()["queue_depth"] == 6)
            process.send_signal(signal.SIGTERM)
            for thread in threads:
                thread.join(timeout=60)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    # uvicorn stops gracefully, then re-raises the signal: the exit a supervisor expects
    assert process.returncode == -signal.SIGTERM, err
    assert [r.status_code for r in results] == [200] * 6
    answered = {ReplayRun.model_validate_json(r.content).run_id for r in results}
    lines = log_lines(home)
    assert len(lines) == 6 and {ReplayRun.model_validate_json(x).run_id for x in lines} == answered
    assert "Shutting down" in err and TOKEN not in out + err


def wait_until(ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"not ready within {seconds} s")
