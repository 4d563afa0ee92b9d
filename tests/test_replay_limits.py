"""What a replay may spend: the model's context (a task too long is refused, naming the limit in
tokens) and one deadline for every model call and retry (a hung server cannot hold a replay).

Hung and failing servers are ``FakeUpstream``, a real HTTP server on 127.0.0.1; the context
logic runs on a scripted model with a known context, and on the real GGUF (slow).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError
from distill.home import Home
from distill.replay import ChatModel, OpenAICompatibleClient, ReplayOptions, RetryPolicy, replay
from distill.replay.config import ensure_gguf
from distill.replay.embedded import LlamaCppModel
from distill.replay.limits import PROMPT_MARGIN, TaskTooLong, fit_bundle
from distill.schemas import ReplayRun
from distill.serve import ServeSettings, ServeState
from distill.settings import replay_deadline

from .conftest import REPO
from .helpers.answers import PLAIN, TASK, grounded_answer
from .helpers.models import ScriptedChatModel, Step
from .helpers.replay import MODEL_ENV, SampleIndex, log_lines, make_hit
from .helpers.serve import CHAT, chat_body, post, running
from .helpers.upstream import FakeUpstream

runner = CliRunner()
GGUF = REPO / "models" / "gemma-3-270m-q4_k_m.gguf"
# the tasks of issue 11: under serve's 8,000-character limit, far over a 4,096-token context
CJK_TASK = "".join(chr(0x4E00 + (i * 7) % 20000) for i in range(7990))
EMOJI_TASK = "".join(chr(0x1F600 + i % 80) for i in range(7980))


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*MODEL_ENV, "DISTILL_REPLAY_DEADLINE"):
        monkeypatch.delenv(name, raising=False)


class WindowedModel(ScriptedChatModel):
    """A scripted model with a known context and a tokenizer of one token per character."""

    def __init__(self, *script: Step, context: int) -> None:
        super().__init__(*script)
        self.context_tokens = context

    def count_tokens(self, text: str) -> int | None:
        return len(text)


def no_retrieval(
    home: Home, task: str, local: Callable[[], ChatModel], **options: Any
) -> ReplayRun:
    opts = ReplayOptions(no_retrieval=True, **options)
    return replay(home, task, opts, retriever=None, local=local)


# --- the context -------------------------------------------------------------------------------


def test_a_task_over_the_context_is_refused_naming_the_limit_in_tokens() -> None:
    bare = fit_bundle("", [], budget_chars=6000, count=len, context=10_000, max_tokens=50).used
    limit = 1000 - 50 - PROMPT_MARGIN - bare
    fits = fit_bundle("x" * limit, [], budget_chars=6000, count=len, context=1000, max_tokens=50)
    assert fits.used <= 1000 - 50
    with pytest.raises(TaskTooLong) as info:
        fit_bundle("x" * (limit + 1), [], budget_chars=6000, count=len, context=1000, max_tokens=50)
    assert f"the task is {limit + 1:,} tokens" in str(info.value)
    assert f"at most {limit:,}" in str(info.value) and "1,000 tokens" in str(info.value)


def test_exemplars_are_trimmed_to_what_the_context_leaves() -> None:
    body = "Round each line before summing. " * 20
    hits = [make_hit(f"audits:AUD-{n}", body=body) for n in range(3)]
    roomy = fit_bundle(TASK, hits, budget_chars=60_000, count=len, context=100_000, max_tokens=50)
    tight = fit_bundle(TASK, hits, budget_chars=60_000, count=len, context=1200, max_tokens=50)
    assert len(roomy.exemplars) == 3 and roomy.used > 1200
    assert tight.exemplars and len(tight.exemplars) < 3 and tight.used <= 1200 - 50


def test_a_remote_model_counts_a_task_as_its_utf8_bytes() -> None:
    context = 2000  # an emoji is 4 bytes: 400 of them cannot fit, 400 ASCII characters can
    fit_bundle("a" * 400, [], budget_chars=6000, count=None, context=context, max_tokens=200)
    with pytest.raises(TaskTooLong, match="UTF-8 bytes"):
        fit_bundle("😀" * 400, [], budget_chars=6000, count=None, context=context, max_tokens=200)


def test_a_task_too_long_calls_no_model_and_logs_nothing(home: Home) -> None:
    model = WindowedModel(grounded_answer, context=512)
    with pytest.raises(TaskTooLong):
        no_retrieval(home, "fix the invoice rounding " * 40, lambda: model)
    assert model.calls == [] and log_lines(home) == []


def test_the_cli_refuses_a_task_too_long_with_exit_1(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = WindowedModel(grounded_answer, context=512)
    monkeypatch.setattr("distill.cli.replay.open_model", lambda settings: model)
    args = ["replay", "--task", "fix it " * 200, "--home", str(home.root), "--no-retrieval"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # not a traceback
    assert "tokens" in result.stderr and "hint" in result.stderr and log_lines(home) == []


def test_serve_answers_422_for_a_task_over_the_context(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    state = serve_state(tmp_path, sample_index, WindowedModel(grounded_answer, context=512))
    with running(state) as url:
        replayed = post(url, "/v1/replay", {"task": "fix it " * 200})
        chat = post(url, CHAT, chat_body("fix it " * 200))
    for answer in (replayed, chat):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "task_too_long"
        assert "tokens" in answer.json()["error"]["message"]
    assert log_lines(state.home) == []


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp", reason="make install-local builds llama-cpp-python")
    return ensure_gguf(GGUF)


@pytest.mark.slow
@pytest.mark.parametrize("task", [CJK_TASK, EMOJI_TASK], ids=["cjk", "emoji"])
def test_the_real_gguf_refuses_a_long_task_on_the_cli_and_in_serve(
    task: str, gguf: Path, tmp_path: Path, sample_index: SampleIndex
) -> None:
    home = Home(tmp_path.resolve())
    (home.root / "models").mkdir()
    (home.root / "models" / "models.toml").write_text(f'[local]\npath = "{gguf}"\n')
    result = runner.invoke(
        app, ["replay", "--task", task, "--home", str(home.root), "--no-retrieval"]
    )
    assert result.exit_code == 1, result.output
    assert "tokens" in result.stderr and "4,096" in result.stderr
    state = serve_state(tmp_path / "serve", sample_index, LlamaCppModel(gguf, n_ctx=4096))
    # without retrieval, as on the CLI: a task nothing in the index matches abstains before
    # any model is loaded or called (an answer, logged), so it never meets the context limit
    with running(state) as url:
        answer = post(url, CHAT, {**chat_body(task), "distill": {"no_retrieval": True}})
    assert answer.status_code == 422 and "tokens" in answer.json()["error"]["message"]
    assert log_lines(home) == [] and log_lines(state.home) == []


@pytest.mark.slow
def test_a_real_gguf_failure_is_a_logged_model_error(gguf: Path, home: Home) -> None:
    model = LlamaCppModel(gguf, n_ctx=256)
    model.context_tokens = None  # skip the check: llama.cpp itself refuses the prompt
    run = no_retrieval(home, "reconcile the ledger " * 100, lambda: model)
    error = run.attempts[0].error or ""
    assert "the embedded model failed" in error and run.verdict == "failed"
    assert ReplayRun.model_validate_json(log_lines(home)[0]).run_id == run.run_id


# --- the deadline ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_real_gguf_stops_generating_at_the_deadline(gguf: Path, home: Home) -> None:
    model = LlamaCppModel(gguf, n_ctx=2048)
    started = time.monotonic()
    no_retrieval(home, TASK, lambda: model, max_tokens=1)  # the prompt's cost, and one token
    one_token = time.monotonic() - started
    started = time.monotonic()
    run = no_retrieval(home, TASK, lambda: model, deadline=0.1, max_tokens=1000)
    # stopped within a few tokens of the deadline: nowhere near the cost of 1,000 tokens
    assert time.monotonic() - started < 2 * one_token + 1.0
    assert "the replay deadline of 0.1 s passed while generating" in (run.attempts[0].error or "")


def client(url: str, *, attempts: int = 3, base_delay: float = 0.05) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        url, "m", retry=RetryPolicy(attempts=attempts, base_delay=base_delay, sleep=time.sleep)
    )


def test_a_hung_server_cannot_hold_a_replay_past_its_deadline(home: Home) -> None:
    with FakeUpstream(30.0) as hung:
        started = time.monotonic()
        run = no_retrieval(home, TASK, lambda: client(hung.url), deadline=1.0)
        took = time.monotonic() - started
        assert len(hung.requests) == 1  # the first request used up the deadline: no retry
    assert 0.9 < took < 3.0
    error = run.attempts[0].error or ""
    assert "ReadTimeout" in error and "the replay deadline of 1 s" in error
    assert ReplayRun.model_validate_json(log_lines(home)[0]).attempts[0].error == error


def test_no_retry_starts_when_its_backoff_would_pass_the_deadline(home: Home) -> None:
    with FakeUpstream(503) as failing:
        started = time.monotonic()
        run = no_retrieval(home, TASK, lambda: client(failing.url, base_delay=5.0), deadline=2.0)
        assert len(failing.requests) == 1 and time.monotonic() - started < 1.0
    assert "server answered 503" in (run.attempts[0].error or "")
    assert "left no time for another attempt" in (run.attempts[0].error or "")


def test_retries_within_the_deadline_still_happen(home: Home) -> None:
    with FakeUpstream("answer", answer=PLAIN) as flaky:
        flaky.script.extend([503, 503])
        run = no_retrieval(home, TASK, lambda: client(flaky.url), deadline=5.0)
        assert len(flaky.requests) == 3
    assert run.attempts[0].error is None and run.attempts[0].response


def test_escalation_shares_the_deadline(home: Home) -> None:
    with FakeUpstream(30.0) as hung, FakeUpstream("answer") as escalation:
        run = replay(
            home,
            TASK,
            ReplayOptions(no_retrieval=True, deadline=0.5, allow_escalation=True),
            retriever=None,
            local=lambda: client(hung.url),
            escalation=lambda: client(escalation.url),
        )
        assert len(escalation.requests) == 0  # the local call used it all up
    local, escalated = run.attempts
    assert "deadline" in (local.error or "")
    assert "passed before attempt 1" in (escalated.error or "")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_cli_deadline_bounds_a_hung_server_and_exits_1(
    how: str, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["replay", "--task", TASK, "--home", str(home.root), "--no-retrieval"]
    if how == "flag":
        args += ["--deadline", "1"]
    else:
        monkeypatch.setenv("DISTILL_REPLAY_DEADLINE", "1")
    with FakeUpstream(30.0) as hung:
        monkeypatch.setenv("DISTILL_MODEL_URL", hung.url)
        started = time.monotonic()
        result = runner.invoke(app, args)
        assert time.monotonic() - started < 3.0 and len(hung.requests) == 1
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "deadline of 1 s" in said and "--deadline" in said
    (line,) = log_lines(home)
    assert ReplayRun.model_validate_json(line).verdict == "failed"


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf"])
def test_a_deadline_that_is_not_a_positive_number_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="DISTILL_REPLAY_DEADLINE"):
        replay_deadline(None, {"DISTILL_REPLAY_DEADLINE": value})
    assert replay_deadline(None, {}) == 180.0
    assert replay_deadline(2.5, {"DISTILL_REPLAY_DEADLINE": "9"}) == 2.5  # the flag first


def test_the_deadline_is_the_servers_setting_not_the_clients() -> None:
    args = ["replay", "--task", TASK, "--server", "http://127.0.0.1:1", "--deadline", "5"]
    result = runner.invoke(app, args)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 1 and "--deadline cannot be combined with --server" in said


def test_serve_frees_its_generation_slot_at_the_deadline(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    with FakeUpstream(30.0) as hung:
        state = serve_state(tmp_path, sample_index, client(hung.url), deadline=1.0)
        with running(state) as url:
            started = time.monotonic()
            chat = post(url, CHAT, chat_body(TASK))
            replayed = post(url, "/v1/replay", {"task": TASK})  # the slot is free again
            took = time.monotonic() - started
    assert chat.status_code == 502 and "deadline of 1 s" in chat.json()["error"]["message"]
    run = ReplayRun.model_validate_json(replayed.content)
    assert run.verdict == "failed" and "deadline" in (run.attempts[0].error or "")
    assert took < 4.0 and len(log_lines(state.home)) == 2


# --- helpers -----------------------------------------------------------------------------------


def serve_state(
    root: Path, index: SampleIndex, model: ChatModel, deadline: float = 180.0
) -> ServeState:
    home = Home(root.resolve())
    home.kb_dir.mkdir(parents=True, exist_ok=True)
    settings = ServeSettings(deadline=deadline, min_relevance=0.0)  # the hashing stand-in
    return ServeState(home, settings, index_uri=index.uri, local=lambda: model)
