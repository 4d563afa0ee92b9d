"""No configured secret leaves the process: not in a file, on stdout or stderr, nor in an answer.

The leak tests use ``FakeUpstream``, a real HTTP server on 127.0.0.1 that echoes the request
headers (``Authorization`` included) in its error body.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from distill.cli import app
from distill.home import Home
from distill.replay import ModelError, OpenAICompatibleClient, RetryPolicy
from distill.replay.remote import ServerError, replay_remote
from distill.schemas import ReplayRequest, ReplayRun
from distill.secrets import REDACTED, SECRET_ENV_VARS, ScrubbingFilter, scrub
from distill.serve.server import log_config

from .conftest import FIXTURES, RECORDED_AT, read_jsonl
from .helpers.answers import TASK
from .helpers.models import FakeSleep
from .helpers.replay import MODEL_ENV, SampleIndex, small_bundle
from .helpers.serve import CHAT, make_state, post, running
from .helpers.upstream import FakeUpstream

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*MODEL_ENV, *SECRET_ENV_VARS):
        monkeypatch.delenv(name, raising=False)


def new_secret(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --- scrub -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_ENV_VARS)
def test_scrub_replaces_each_configured_secret_raw_and_json_escaped(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = 'sk/"Ünï-' + uuid.uuid4().hex
    monkeypatch.setenv(name, secret)
    forms = [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    ]
    for form in forms:
        assert scrub(f"before {form} after") == f"before {REDACTED} after"
    text = json.dumps({"error": f"Bearer {secret}"})
    assert secret not in scrub(text) and json.loads(scrub(text)) == {"error": f"Bearer {REDACTED}"}


def test_scrub_reads_the_environment_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = new_secret("sk")
    assert scrub(secret) == secret
    monkeypatch.setenv("DISTILL_API_KEY", secret)
    assert scrub(secret) == REDACTED
    monkeypatch.delenv("DISTILL_API_KEY")
    assert scrub(secret) == secret


def test_values_too_short_to_be_keys_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_API_KEY", "model")  # would mangle JSON keys if replaced
    assert scrub('{"model": "m"}') == '{"model": "m"}'


def test_the_logging_filter_scrubs_message_arguments_and_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret("tok")
    monkeypatch.setenv("DISTILL_API_TOKEN", secret)
    try:
        raise RuntimeError(f"upstream said {secret}")
    except RuntimeError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, f"{secret} %s", (secret,), sys.exc_info()
        )
    assert ScrubbingFilter().filter(record)
    assert secret not in logging.Formatter().format(record)


def test_every_handler_of_the_servers_log_scrubs() -> None:
    config = log_config()
    assert config["filters"]["scrub"]["()"] == "distill.secrets.ScrubbingFilter"
    assert all("scrub" in handler["filters"] for handler in config["handlers"].values())


def test_a_secret_cut_by_the_error_excerpt_leaves_no_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret("sk")
    monkeypatch.setenv("DISTILL_API_KEY", secret)

    def echo(request: httpx.Request) -> httpx.Response:  # the key straddles the 200th character
        return httpx.Response(400, text="x" * 183 + request.headers["authorization"])

    client = OpenAICompatibleClient(
        "http://models.test/v1",
        "m",
        api_key=SecretStr(secret),
        transport=httpx.MockTransport(echo),
        retry=RetryPolicy(attempts=1, sleep=FakeSleep()),
    )
    with pytest.raises(ModelError) as info:
        client.complete(small_bundle(), max_tokens=5)
    assert secret[:10] not in str(info.value) and "Bearer [redacted]" in str(info.value)


def test_a_serve_error_that_echoes_the_token_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    token = new_secret("tok")
    monkeypatch.setenv("DISTILL_API_TOKEN", token)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="refused " + request.headers["authorization"])

    with pytest.raises(ServerError) as info:
        replay_remote(
            "http://serve.test",
            ReplayRequest(task=TASK),
            token=SecretStr(token),
            transport=httpx.MockTransport(echo),
        )
    assert token not in str(info.value) and REDACTED in str(info.value)


# --- end to end: the CLI, run-all, serve ---------------------------------------------------------


def assert_nowhere(secrets: list[str], home: Path, *outputs: str) -> None:
    files = [p for p in home.rglob("*") if p.is_file()]
    for secret in secrets:
        for output in outputs:
            assert secret not in "".join(output.split())  # not even cut by a wrapped line
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_keys_echoed_by_the_upstream_reach_no_file_output_or_later_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURES / "sample" / "data", home / "data")
    key, escalation_key = new_secret("sk-model"), new_secret("sk-escalation")
    with FakeUpstream("echo") as local, FakeUpstream("echo") as escalation:
        monkeypatch.setenv("DISTILL_MODEL_URL", local.url)
        monkeypatch.setenv("DISTILL_API_KEY", key)
        monkeypatch.setenv("DISTILL_ESCALATION_URL", escalation.url)
        monkeypatch.setenv("DISTILL_ESCALATION_API_KEY", escalation_key)
        args = ["replay", "--task", TASK, "--home", str(home), "--no-retrieval"]
        result = runner.invoke(app, [*args, "--allow-escalation", "--json"])
        assert (len(local.requests), len(escalation.requests)) == (1, 1)  # 401: no retry
    assert result.exit_code == 1, result.stderr  # a model error, not a gate failure
    run = ReplayRun.model_validate_json(result.stdout)
    assert [a.error and "Bearer [redacted]" in a.error for a in run.attempts] == [True, True]
    assert_nowhere([key, escalation_key], home, result.stdout, result.stderr)
    later = runner.invoke(
        app, ["run-all", "--home", str(home), "--recorded-at", RECORDED_AT, "--no-index"]
    )
    assert later.exit_code == 0, later.stderr
    evidence = read_jsonl(Home(home).evidence_dir / "replay_runs.jsonl")
    assert run.run_id in json.dumps(evidence)  # the run was read back, scrubbed
    assert_nowhere([key, escalation_key], home, later.stdout, later.stderr)


def test_serve_answers_and_logs_no_key_or_token(
    tmp_path: Path, sample_index: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = new_secret("sk-model"), new_secret("tok-serve")
    monkeypatch.setenv("DISTILL_API_KEY", key)
    monkeypatch.setenv("DISTILL_API_TOKEN", token)
    auth = {"Authorization": f"Bearer {token}"}
    with FakeUpstream("echo") as upstream:
        model = OpenAICompatibleClient(upstream.url, "m", api_key=SecretStr(key))
        state = make_state(tmp_path / "serve", sample_index, model, token)
        with running(state) as url:
            task = f"{TASK} (our token is {token})"  # pasted by mistake: never echoed or kept
            replayed = post(url, "/v1/replay", {"task": task}, headers=auth)
            body = {"model": "distill-replay", "messages": [{"role": "user", "content": task}]}
            chat = post(url, CHAT, body, headers=auth)
    assert replayed.status_code == 200 and chat.status_code == 502
    run = ReplayRun.model_validate_json(replayed.content)
    assert "Bearer [redacted]" in (run.attempts[0].error or "") and REDACTED in run.task
    assert "Bearer [redacted]" in chat.json()["error"]["message"]
    assert_nowhere([key, token], state.home.root, replayed.text, chat.text)
