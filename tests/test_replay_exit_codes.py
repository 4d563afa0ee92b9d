"""`distill replay` exit codes when the model fails: 1 (an error), never 2 (a gate failure), and
the run is still logged. The failing models are real: a closed port on 127.0.0.1, and
``FakeUpstream`` answering 500 or a body that is not JSON."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.home import Home
from distill.schemas import ReplayRun

from .helpers.answers import HEDGE, TASK
from .helpers.replay import MODEL_ENV, log_lines
from .helpers.upstream import FakeUpstream, closed_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*MODEL_ENV, "DISTILL_REPLAY_DEADLINE"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def failing_model(kind: str) -> Iterator[str]:
    """The URL of a model that fails the way ``kind`` says."""
    if kind == "unreachable":
        yield f"http://127.0.0.1:{closed_port()}/v1"
        return
    with FakeUpstream(500 if kind == "500" else "garbage") as upstream:
        yield upstream.url


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("unreachable", "ConnectError"),
        ("500", "server answered 500"),
        ("garbage", "the answer is not JSON"),
    ],
)
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_a_failing_model_exits_1_and_its_run_is_logged(
    kind: str, says: str, as_json: bool, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["replay", "--task", TASK, "--home", str(home.root), "--no-retrieval"]
    with failing_model(kind) as url:
        monkeypatch.setenv("DISTILL_MODEL_URL", url)
        result = runner.invoke(app, [*args, *(["--json"] if as_json else [])])
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "error:" in said and says in said and "hint:" in said
    (line,) = log_lines(home)
    logged = ReplayRun.model_validate_json(line)
    assert logged.verdict == "failed" and says in (logged.attempts[0].error or "")
    assert logged.run_id in said  # the hint names the logged run
    if as_json:
        assert ReplayRun.model_validate_json(result.stdout) == logged


def test_a_local_failure_rescued_by_escalation_follows_the_escalations_gate(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = HEDGE
    with failing_model("500") as url, FakeUpstream("answer", answer=answer) as escalation:
        monkeypatch.setenv("DISTILL_MODEL_URL", url)
        monkeypatch.setenv("DISTILL_ESCALATION_URL", escalation.url)
        args = ["replay", "--task", TASK, "--home", str(home.root), "--no-retrieval"]
        result = runner.invoke(app, [*args, "--allow-escalation"])
    assert result.exit_code == 2, result.output  # the escalation answered: a gate failure
    run = ReplayRun.model_validate_json(log_lines(home)[0])
    assert [a.role for a in run.attempts] == ["local", "escalation"] and run.escalated
