"""replay: bundle, gate, escalation guard, the replay log, and the CLI.

Retrieval is real (LanceDB on disk, built from the sample corpus with the seeded
``HashingEmbedder``); the model is ``ScriptedChatModel``, a stand-in that plays canned answers,
or the real HTTP client talking to ``FakeUpstream`` on 127.0.0.1 (both in tests/helpers).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from distill.home import Home
from distill.index import HashingEmbedder, PlaybookStore, Retriever, SearchHit
from distill.index.stage import index_export
from distill.replay import (
    HEDGING_PHRASES,
    ChatModel,
    GatePolicy,
    ModelError,
    OpenAICompatibleClient,
    ReplayOptions,
    RetryPolicy,
    build_bundle,
    replay,
    run_gate,
)
from distill.replay.bundle import MAX_STEPS, SOURCES_CUE, answer_prompt, completion_answer
from distill.schemas import Bundle, ReplayRun

from .conftest import RECORDED_AT, read_jsonl
from .helpers.answers import HEDGE, TASK, grounded_answer, grounded_answer_or_plain, reworded_answer
from .helpers.models import (
    CannedRetriever,
    CountingFactory,
    FakeSleep,
    ScriptedChatModel,
    Step,
    never_called,
)
from .helpers.replay import MODEL_ENV, SampleIndex, log_lines, make_hit
from .helpers.upstream import FakeUpstream, closed_port

runner = CliRunner()
# --- stand-ins and fixtures --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def counting_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer=HEDGE) as server:
        yield server


def run_replay(
    home: Home,
    index: SampleIndex,
    local: Callable[[], ChatModel],
    escalation: Callable[[], ChatModel] | None = None,
    **options: Any,
) -> ReplayRun:
    # the hashing stand-in's cosines are not MiniLM's: logic tests opt out of the relevance
    # threshold, which has tests of its own (test_replay_relevance.py)
    options.setdefault("min_relevance", 0.0)
    return replay(
        home,
        TASK,
        ReplayOptions(**options),
        retriever=index.retriever(),
        local=local,
        escalation=escalation,
    )


# --- the bundle --------------------------------------------------------------------------------


def test_bundle_holds_at_most_3_exemplars_and_2_warnings_labelled_by_id(
    home: Home, sample_index: SampleIndex
) -> None:
    run = run_replay(home, sample_index, local=never_called, dry_run=True)
    bundle = run.bundle
    hits = run.hits
    assert [h.id for h in hits] == [h.id for h in sample_index.hits]
    assert run.index_version == sample_index.version and run.retrieval_mode == "hybrid"
    accepted = [h.id for h in hits if h.category == "accepted"]
    partial = [h.id for h in hits if h.category == "partially_accepted"]
    assert len(accepted) > 3 and len(partial) >= 2  # the exemplar cap is exercised
    assert [p.id for p in bundle.exemplars] == accepted[:3]
    assert [p.id for p in bundle.warnings] == partial[:2]
    assert {p.category for p in bundle.exemplars} == {"accepted"}
    assert {p.category for p in bundle.warnings} == {"partially_accepted"}
    user = bundle.messages[-1].content
    for piece in bundle.exemplars + bundle.warnings:
        assert f"[{piece.id}]" in user
    for piece in bundle.warnings:
        assert f"[{piece.id}] WARNING" in user
    chosen = {p.id for p in bundle.exemplars + bundle.warnings}
    assert bundle.validation_steps and {s.id for s in bundle.validation_steps} <= chosen
    for step in bundle.validation_steps:
        assert f"- {step.step} [{step.id}]" in user
        assert step.step.split()[0].lower() in {"verify", "check", "assert", "ensure", "confirm"}
    assert user.endswith(f"Task: {TASK}") and bundle.prompt.endswith(f"Task: {TASK}\nSources: [")
    for piece in bundle.exemplars:  # the demonstrations name their source before the answer
        assert f"Task: {piece.instruction}\nSources: [{piece.id}]\nAnswer: " in bundle.prompt
    assert bundle.used <= bundle.budget and bundle.trimmed == []


@pytest.mark.parametrize(
    ("continuation", "answer"),
    [
        ("audits:AUD-1]\nAnswer: Round each line.\n", "Round each line.\nSources: [audits:AUD-1]"),
        ("audits:AUD-1], [audits:AUD-2]\nAnswer: x", "x\nSources: [audits:AUD-1], [audits:AUD-2]"),
        ("audits:AUD-1] and then nothing", "Sources: [audits:AUD-1] and then nothing"),
    ],
)
def test_a_sources_first_completion_reads_as_answer_then_sources(
    continuation: str, answer: str
) -> None:
    bundle = build_bundle(TASK, [make_hit("audits:AUD-1")])
    assert bundle.prompt.endswith(SOURCES_CUE)
    assert completion_answer(bundle, continuation) == answer
    bare = build_bundle(TASK, [])  # nothing retrieved: the old "Answer:" prompt, text as is
    assert bare.prompt == f"Task: {TASK}\nAnswer:"
    assert completion_answer(bare, " plain text ") == "plain text"


def test_the_answer_prompt_puts_the_cited_demonstration_nearest_the_task() -> None:
    # a base model copies the demonstration nearest the task: the one it cited must be there
    hits = [
        replace(make_hit(f"audits:AUD-{n}"), relevance=relevance)
        for n, relevance in ((1, 0.9), (2, 0.8), (3, 0.7))
    ]
    bundle = build_bundle(TASK, hits)
    last = bundle.exemplars[0].id  # the best hit is demonstrated last
    assert answer_prompt(bundle, last) == f"{bundle.prompt}{last}]\nAnswer:"
    other = "audits:AUD-3"
    prompt = answer_prompt(bundle, other)
    demos = prompt.split("\n\n")
    assert demos[-2].startswith(f"Task: {bundle.exemplars[2].instruction}\nSources: [{other}]")
    assert demos[-1] == f"Task: {TASK}\nSources: [{other}]\nAnswer:"
    for piece in bundle.exemplars:  # nothing dropped, nothing repeated
        assert prompt.count(f"Sources: [{piece.id}]\nAnswer: {piece.response}") == 1


def test_build_bundle_picks_the_best_ranked_and_caps_steps() -> None:
    steps = [f"verify ledger check number {n}" for n in range(6)]
    hits = [
        make_hit("audits:P-1", "partially_accepted", steps=steps[:2]),
        make_hit("audits:A-1", steps=[*steps[:3], "VERIFY LEDGER CHECK NUMBER 0"]),
        make_hit("audits:A-2", steps=steps[3:]),
        make_hit("audits:R-1", "rejected", steps=["verify nothing rejected leaks"]),
        make_hit("audits:P-2", "partially_accepted", steps=["check the second warning"]),
        make_hit("audits:A-3", steps=["confirm the third exemplar", "ensure a ninth step"]),
        make_hit("audits:P-3", "partially_accepted"),
        make_hit("audits:A-4", steps=["verify the fourth is never used"]),
    ]
    bundle = build_bundle("Round invoices", hits, budget=100_000)
    assert [p.id for p in bundle.exemplars] == ["audits:A-1", "audits:A-2", "audits:A-3"]
    assert [p.id for p in bundle.warnings] == ["audits:P-1", "audits:P-2"]
    assert [p.rank for p in bundle.exemplars] == [2, 3, 6]
    texts = [s.step.lower() for s in bundle.validation_steps]
    assert len(texts) == len(set(texts)) == MAX_STEPS  # de-duplicated, capped
    assert "verify nothing rejected leaks" not in texts
    assert "verify the fourth is never used" not in texts
    assert bundle.validation_steps[0].id == "audits:P-1"  # steps follow retrieval order


def test_trimming_cuts_the_lowest_ranked_first_and_never_empties_the_bundle() -> None:
    hits = [
        make_hit("audits:A-1", steps=["verify one"]),
        make_hit("audits:P-1", "partially_accepted", steps=["check two"]),
        make_hit("audits:A-2", steps=["verify three"]),
        make_hit("audits:P-2", "partially_accepted", steps=["check four"]),
        make_hit("audits:A-3", steps=["verify five"]),
    ]
    full = build_bundle("Round invoices", hits, budget=100_000)
    assert full.trimmed == full.condensed == [] and full.budget_unit == "chars"
    two = build_bundle("Round invoices", hits[:2], budget=100_000).used
    fitted = build_bundle("Round invoices", hits, budget=two)
    # one-line pieces cannot be condensed further: the lowest-ranked go, the best never does
    assert fitted.trimmed == ["audits:A-3", "audits:P-2", "audits:A-2"]
    assert [p.id for p in fitted.exemplars] == ["audits:A-1"]
    assert [p.id for p in fitted.warnings] == ["audits:P-1"]
    assert [s.step for s in fitted.validation_steps] == ["verify one", "check two"]
    assert fitted.used <= fitted.budget == two
    tiny = build_bundle("Round invoices", hits, budget=5)
    assert [p.id for p in tiny.exemplars] == ["audits:A-1"] and tiny.warnings == []
    assert "audits:A-1" in tiny.condensed and "[audits:A-1]" in tiny.messages[-1].content


def test_a_long_exemplar_is_cut_to_its_head_steps_and_checks_not_dropped() -> None:
    prose = "\n".join(f"Background paragraph {n} about the billing history." * 3 for n in range(30))
    body = f"{prose}\n- Round each line with Decimal\n2) Sum the rounded lines\nverify the total"
    long_hit = make_hit("audits:A-1", steps=["verify the total"], body=body)
    long_hit = replace(long_hit, text=f"{'Fix the rounding of invoices ' * 40}\n\n{body}")
    full = build_bundle("Round invoices", [long_hit], budget=100_000)
    bundle = build_bundle("Round invoices", [long_hit], budget=full.used // 4)
    (piece,) = bundle.exemplars
    assert bundle.condensed == ["audits:A-1"] and bundle.trimmed == []
    assert (
        piece.response
        == "- Round each line with Decimal\n2) Sum the rounded lines\nverify the total"
    )
    assert len(piece.instruction) <= 202 and piece.instruction.startswith("Fix the rounding")
    assert bundle.used <= bundle.budget


def test_a_known_tokenizer_measures_the_budget_in_tokens() -> None:
    hits = [make_hit(f"audits:A-{n}") for n in range(1, 4)]
    words = build_bundle("Round invoices", hits, budget=100_000, count=lambda t: len(t.split()))
    assert words.budget_unit == "tokens"
    chars = build_bundle("Round invoices", hits, budget=100_000)
    assert words.used < chars.used / 3  # words, not characters


def test_no_retrieval_gives_an_empty_bundle_and_a_vacuous_citation_check(home: Home) -> None:
    answer = "Round each invoice line before summing, then reconcile the totals with the ledger."
    model = ScriptedChatModel(answer)
    run = replay(
        home,
        TASK,
        ReplayOptions(no_retrieval=True),
        retriever=never_called,
        local=lambda: model,
    )
    bundle = run.bundle
    assert run.retrieval_mode == "none" and run.hits == [] and run.index_version is None
    assert bundle.exemplars == [] and bundle.warnings == [] and bundle.validation_steps == []
    assert bundle.messages[-1].content == f"Task: {TASK}"
    assert model.calls[0].bundle == bundle
    gate = run.attempts[0].gate
    assert gate is not None and gate.passed and run.verdict == "passed"
    (cites,) = [c for c in gate.checks if c.name == "cites_retrieved_id"]
    assert cites.passed and "no retrieval" in cites.detail
    assert run.cited_ids == []


def test_a_missing_or_empty_index_is_an_error_never_an_empty_bundle(
    home: Home, tmp_path: Path
) -> None:
    missing = tmp_path / "no-index-here"
    with pytest.raises(DistillError, match="no index") as info:
        replay(
            home,
            TASK,
            ReplayOptions(dry_run=True),
            retriever=lambda: Retriever(PlaybookStore(str(missing))),
            local=never_called,
        )
    assert "distill index" in info.value.hint
    empty = Home((tmp_path / "empty-home").resolve())
    empty.export_path("rag").parent.mkdir(parents=True)
    empty.export_path("rag").write_bytes(b"")
    index_export(empty, str(empty.index_dir), HashingEmbedder())
    with pytest.raises(DistillError, match="empty"):
        replay(
            home,
            TASK,
            ReplayOptions(),
            retriever=lambda: Retriever(PlaybookStore(str(empty.index_dir))),
            local=never_called,
        )
    with pytest.raises(DistillError, match="needs an index"):
        replay(home, TASK, ReplayOptions(dry_run=True), retriever=None, local=never_called)
    assert log_lines(home) == []  # nothing was logged as if it had been answered


# --- the gate ----------------------------------------------------------------------------------

GATE_HITS = [
    make_hit(
        "audits:AUD-1",
        steps=[
            "verify the invoice total matches the ledger",
            "check the rounding mode is half-even",
        ],
    ),
    make_hit(
        "scrum_reviews:SR-2",
        "partially_accepted",
        steps=["ensure a replayed webhook event is ignored"],
        body="Store event ids in migrations/0009_idempotency_keys.sql.",
    ),
]
GATE_IDS = [h.id for h in GATE_HITS]
GOOD = (
    "Edit src/billing/invoice.py to round each line before summing [audits:AUD-1].\n"
    "- verify the invoice total matches the ledger\n"
    "- check the rounding mode is half-even"
)
ALL_CHECKS = {
    "non_empty",
    "length",
    "no_hedging",
    "validation_step_coverage",
    "cites_retrieved_id",
    "no_unknown_file_paths",
}


@pytest.fixture(scope="module")
def gate_bundle() -> Bundle:
    return build_bundle("Fix invoice rounding", GATE_HITS)


def failed_checks(answer: str, bundle: Bundle, policy: GatePolicy | None = None) -> set[str]:
    report = run_gate(answer, bundle, GATE_IDS, policy)
    assert {c.name for c in report.checks} == ALL_CHECKS
    failed = {c.name for c in report.checks if not c.passed}
    assert report.passed == (not failed)
    return failed


@pytest.mark.parametrize(
    ("answer", "policy", "expected"),
    [
        (GOOD, None, set()),
        ("", None, {"non_empty", "length", "validation_step_coverage", "cites_retrieved_id"}),
        ("  \n ", None, {"non_empty", "length", "validation_step_coverage", "cites_retrieved_id"}),
        (GOOD, GatePolicy(min_chars=len(GOOD) + 1), {"length"}),
        (GOOD, GatePolicy(max_chars=len(GOOD) - 1), {"length"}),
        (GOOD + "\nI'm not sure this is right.", None, {"no_hedging"}),
        (
            "Edit src/billing/invoice.py to round each line before summing [audits:AUD-1].",
            None,
            {"validation_step_coverage"},
        ),
        (GOOD.replace(" [audits:AUD-1]", ""), None, {"cites_retrieved_id"}),
        (GOOD.replace("[audits:AUD-1]", "[audits:AUD-9]"), None, {"cites_retrieved_id"}),
        (GOOD + "\nAlso update src/billing/ghost.py.", None, {"no_unknown_file_paths"}),
        (GOOD + "\nKeep migrations/0009_idempotency_keys.sql as is.", None, set()),
    ],
    ids=[
        "good",
        "empty",
        "blank",
        "too-short",
        "too-long",
        "hedging",
        "low-step-coverage",
        "no-citation",
        "cites-an-unretrieved-id",
        "unknown-path",
        "path-from-a-warning",
    ],
)
def test_gate_fails_exactly_the_check_that_applies(
    answer: str, policy: GatePolicy | None, expected: set[str], gate_bundle: Bundle
) -> None:
    assert failed_checks(answer, gate_bundle, policy) == expected


@pytest.mark.parametrize("phrase", HEDGING_PHRASES)
def test_every_hedging_phrase_fails_the_gate_in_any_case(phrase: str, gate_bundle: Bundle) -> None:
    assert failed_checks(f"{GOOD}\n{phrase.upper()}, though.", gate_bundle) == {"no_hedging"}


def test_a_path_that_exists_under_repo_root_passes(tmp_path: Path, gate_bundle: Bundle) -> None:
    answer = GOOD + "\nAlso update src/billing/ghost.py."
    assert failed_checks(answer, gate_bundle, GatePolicy(repo_root=tmp_path)) == {
        "no_unknown_file_paths"
    }
    (tmp_path / "src" / "billing").mkdir(parents=True)
    (tmp_path / "src" / "billing" / "ghost.py").write_text("")
    assert failed_checks(answer, gate_bundle, GatePolicy(repo_root=tmp_path)) == set()


def test_an_answer_about_an_api_that_cannot_do_something_is_not_hedging(
    gate_bundle: Bundle,
) -> None:
    answer = GOOD + "\n- verify the API cannot be called without a key"
    assert failed_checks(answer, gate_bundle) == set()


def test_citing_an_id_that_merely_starts_with_a_retrieved_id_is_not_a_citation(
    gate_bundle: Bundle,
) -> None:
    answer = GOOD.replace("[audits:AUD-1]", "[audits:AUD-12]")
    assert failed_checks(answer, gate_bundle) == {"cites_retrieved_id"}


# --- escalation --------------------------------------------------------------------------------


def test_escalation_gets_the_same_bundle_when_the_local_answer_fails(
    home: Home, sample_index: SampleIndex
) -> None:
    local = ScriptedChatModel(HEDGE)
    remote = ScriptedChatModel(grounded_answer, name="scripted-escalation")
    factory = CountingFactory(lambda: remote)
    run = run_replay(
        home, sample_index, lambda: local, factory, allow_escalation=True, max_tokens=150
    )
    assert factory.calls == 1
    assert [a.role for a in run.attempts] == ["local", "escalation"]
    local_gate, remote_gate = (a.gate for a in run.attempts)
    assert local_gate is not None and not local_gate.passed
    assert remote_gate is not None and remote_gate.passed
    assert remote.calls[0].bundle == local.calls[0].bundle == run.bundle
    assert (local.calls[0].max_tokens, remote.calls[0].max_tokens) == (150, 300)
    assert run.escalated and run.escalation_allowed and run.verdict == "passed"
    assert run.final_answer == run.attempts[1].response == grounded_answer(run.bundle)
    assert run.cited_ids and run.attempts[1].model == "scripted-escalation"
    assert run.attempts[1].usage.prompt_tokens == 321 and run.attempts[1].latency_ms == 12.3


@pytest.mark.parametrize(
    ("allow", "local_only", "local_answer", "requests"),
    [
        (False, False, HEDGE, 0),
        (True, True, HEDGE, 0),
        (False, True, HEDGE, 0),
        (True, False, grounded_answer, 0),
        (True, False, HEDGE, 1),
    ],
    ids=["not-allowed", "local-only-wins", "local-only", "local-passed", "allowed"],
)
def test_nothing_reaches_the_escalation_server_unless_allowed(
    home: Home,
    sample_index: SampleIndex,
    counting_server: FakeUpstream,
    allow: bool,
    local_only: bool,
    local_answer: Step,
    requests: int,
) -> None:
    def open_escalation() -> OpenAICompatibleClient:
        retry = RetryPolicy(attempts=1, sleep=FakeSleep())
        return OpenAICompatibleClient(counting_server.url, "escalation-model", retry=retry)

    factory = CountingFactory(open_escalation)
    run = run_replay(
        home,
        sample_index,
        lambda: ScriptedChatModel(local_answer),
        factory,
        allow_escalation=allow,
        local_only=local_only,
        max_tokens=64,
    )
    assert len(counting_server.requests) == requests == factory.calls
    assert run.escalation_allowed is (allow and not local_only)
    assert run.escalated is bool(requests)
    if requests:
        (sent,) = counting_server.requests
        assert sent.body["model"] == "escalation-model" and sent.body["max_tokens"] == 128
        escalation = run.attempts[1]
        assert escalation.endpoint == f"http://127.0.0.1:{counting_server.port}"
        assert escalation.response == HEDGE and escalation.gate is not None
        assert not escalation.gate.passed and run.verdict == "failed"
    else:
        assert [a.role for a in run.attempts] == ["local"]


def test_a_failing_model_call_is_logged_as_an_attempt_with_its_error(home: Home) -> None:
    port = closed_port()
    client = OpenAICompatibleClient(
        f"http://127.0.0.1:{port}/v1",
        "down-model",
        retry=RetryPolicy(attempts=2, sleep=FakeSleep()),
    )
    run = replay(home, TASK, ReplayOptions(no_retrieval=True), retriever=None, local=lambda: client)
    (attempt,) = run.attempts
    assert attempt.error is not None and attempt.gate is None and attempt.response == ""
    assert "ConnectError" in attempt.error and "attempt 2" in attempt.error
    assert f"127.0.0.1:{port}/v1/chat/completions" in attempt.error
    assert attempt.model == "down-model" and run.verdict == "failed"
    (line,) = log_lines(home)
    assert ReplayRun.model_validate_json(line).attempts[0].error == attempt.error


def test_a_model_error_locally_still_escalates_when_allowed(
    home: Home, sample_index: SampleIndex
) -> None:
    down = ModelError("server answered 503", url="http://local/v1", status=503, attempts=3)
    remote = ScriptedChatModel(grounded_answer, name="scripted-escalation")
    run = run_replay(
        home,
        sample_index,
        lambda: ScriptedChatModel(down),
        lambda: remote,
        allow_escalation=True,
    )
    local, escalation = run.attempts
    assert local.error is not None and "503" in local.error and local.gate is None
    assert escalation.gate is not None and escalation.gate.passed and run.verdict == "passed"


# --- the replay log ----------------------------------------------------------------------------


def test_every_run_appends_one_valid_line_that_collect_reads_back(
    home: Home, sample_index: SampleIndex
) -> None:
    runs = []
    cases: list[tuple[Step | None, dict[str, Any]]] = [
        (reworded_answer, {}),
        (HEDGE, {"task_id": "LL-9"}),
        (None, {"dry_run": True, "log": True}),  # a dry run logs when asked (audit's does)
        (grounded_answer, {}),  # a copy of the playbook it cites
    ]
    for script, options in cases:
        local: Callable[[], ChatModel] = (
            partial(ScriptedChatModel, script) if script else never_called
        )
        runs.append(run_replay(home, sample_index, local, **options))
        lines = log_lines(home)
        assert len(lines) == len(runs)
        assert ReplayRun.model_validate_json(lines[-1]) == runs[-1]
        assert orjson.loads(lines[-1])["schema"] == "replay_run.v1"
    passed, failed, dry, copy = runs
    assert (passed.verdict, failed.verdict, dry.verdict) == ("passed", "failed", "dry_run")
    assert passed.semantic_passed and passed.reuse_of is None
    assert copy.verdict == "passed" and copy.reuse_of == copy.cited_ids[0]
    assert failed.task_id == "LL-9" and dry.attempts == []
    assert len({r.run_id for r in runs}) == 4
    for args in (["collect"], ["score"]):
        result = runner.invoke(
            app, [*args, "--home", str(home.root), "--recorded-at", RECORDED_AT, "--json"]
        )
        assert result.exit_code == 0, result.stderr
    evidence = read_jsonl(home.evidence_dir / "replay_runs.jsonl")
    assert [e["instruction"] for e in evidence] == [TASK] * 4
    scored = {r["id"]: r for r in read_jsonl(home.scored_dir / "replay_runs.jsonl")}
    assert {key: row["category"] for key, row in scored.items()} == {
        f"replay_runs:{passed.run_id}": "partially_accepted",
        f"replay_runs:{failed.run_id}": "rejected",
        f"replay_runs:{dry.run_id}": "needs_human_review",
        f"replay_runs:{copy.run_id}": "needs_human_review",
    }
    assert scored[f"replay_runs:{copy.run_id}"]["rule"].startswith(f"reuse of {copy.reuse_of}")


AGENTS = 16
LONG_TASK = "reconcile the ledger and verify every invoice total. " * 150  # lines of ~30 KB


def _append_dry_run(root: str, hits: list[SearchHit], barrier: Any, agent: int) -> None:
    barrier.wait(timeout=60)
    replay(
        Home(Path(root)),
        f"agent {agent}: {LONG_TASK}",
        ReplayOptions(dry_run=True, log=True, task_id=f"agent-{agent}", budget=200_000),
        retriever=lambda: CannedRetriever(hits),
        local=never_called,
    )


def test_concurrent_agents_append_whole_lines(home: Home, sample_index: SampleIndex) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(AGENTS)
    agents = [
        context.Process(
            target=_append_dry_run, args=(str(home.root), sample_index.hits, barrier, n)
        )
        for n in range(AGENTS)
    ]
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.join(timeout=60)
    assert [agent.exitcode for agent in agents] == [0] * AGENTS
    data = (home.kb_dir / "replay_runs.jsonl").read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert len(lines) == AGENTS
    runs = [ReplayRun.model_validate_json(line) for line in lines]
    assert min(len(line) for line in lines) > 16_384  # far beyond one atomic write
    assert sorted(r.task_id or "" for r in runs) == sorted(f"agent-{n}" for n in range(AGENTS))
    assert all(r.verdict == "dry_run" and r.bundle.exemplars for r in runs)


def test_no_api_key_reaches_the_log_the_json_or_any_file(
    home: Home,
    sample_index: SampleIndex,
    counting_server: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = uuid.uuid4().hex  # grep for the random part: a stripped prefix must not hide a leak
    secret = f"sk-distill-{token}"
    monkeypatch.setenv("DISTILL_API_KEY", secret)
    monkeypatch.setenv("DISTILL_ESCALATION_API_KEY", secret)
    monkeypatch.setenv("DISTILL_MODEL_URL", counting_server.url)
    monkeypatch.setenv("DISTILL_ESCALATION_URL", counting_server.url)
    monkeypatch.setenv("DISTILL_ESCALATION_MODEL", "escalation-model")
    result = runner.invoke(
        app,
        [
            "replay",
            "--task",
            TASK,
            "--home",
            str(home.root),
            "--index-dir",
            sample_index.uri,
            "--allow-escalation",
            "--json",
        ],
    )
    assert result.exit_code == 2, result.stderr  # both answers hedge: the gate fails
    run = ReplayRun.model_validate_json(result.stdout)
    assert [a.role for a in run.attempts] == ["local", "escalation"]
    # the key was really in play: both requests carried it
    assert [r.headers.get("authorization") for r in counting_server.requests] == [
        f"Bearer {secret}"
    ] * 2
    assert token not in result.stdout and token not in result.stderr
    files = [p for p in home.root.rglob("*") if p.is_file()]
    assert home.kb_dir / "replay_runs.jsonl" in files
    for path in files:
        assert token.encode() not in path.read_bytes(), path


# --- the CLI -----------------------------------------------------------------------------------


def replay_cli(home: Home, index: SampleIndex, *flags: str) -> Any:
    args = ["replay", "--task", TASK, "--home", str(home.root), "--index-dir", index.uri]
    return runner.invoke(app, [*args, *flags])


def test_cli_dry_run_prints_a_replay_run_and_writes_nothing(
    home: Home, sample_index: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("distill.cli.replay.open_model", lambda settings: never_called())
    result = replay_cli(home, sample_index, "--dry-run", "--json", "--task-id", "LL-106")
    assert result.exit_code == 0, result.stderr
    run = ReplayRun.model_validate_json(result.stdout)
    assert run.verdict == "dry_run" and run.attempts == [] and run.task_id == "LL-106"
    assert [h.id for h in run.hits] == [h.id for h in sample_index.hits]
    assert 0 < len(run.bundle.exemplars) <= 3 and len(run.bundle.warnings) <= 2
    human = replay_cli(home, sample_index, "--dry-run")
    assert human.exit_code == 0 and f"Task: {TASK}" in human.stdout
    assert "no model called" in human.stderr
    assert not (home.kb_dir / "replay_runs.jsonl").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    ("answer", "as_json", "exit_code"),
    [(HEDGE, True, 2), (HEDGE, False, 2), (grounded_answer, True, 0)],
    ids=["fails-json", "fails-human", "passes"],
)
def test_cli_exits_2_when_the_gate_fails(
    home: Home,
    sample_index: SampleIndex,
    monkeypatch: pytest.MonkeyPatch,
    answer: Step,
    as_json: bool,
    exit_code: int,
) -> None:
    monkeypatch.setattr("distill.cli.replay.open_model", lambda settings: ScriptedChatModel(answer))
    result = replay_cli(home, sample_index, *(["--json"] if as_json else []))
    assert result.exit_code == exit_code, result.stderr
    if as_json:
        run = ReplayRun.model_validate_json(result.stdout)
        assert run.verdict == ("passed" if exit_code == 0 else "failed")
    else:
        assert result.stdout.strip() == HEDGE
        assert "failed" in result.stderr and "no_hedging" in result.stderr
    assert len(log_lines(home)) == 1


def test_cli_without_an_index_exits_1_with_a_hint(home: Home, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["replay", "--task", TASK, "--home", str(home.root), "--index-dir", str(tmp_path / "x")],
    )
    assert result.exit_code == 1
    assert "no index" in result.stderr and "hint" in result.stderr
    assert log_lines(home) == []


# --- known bugs --------------------------------------------------------------------------------


def test_a_server_model_gets_the_retrieved_context(
    home: Home, sample_index: SampleIndex, counting_server: FakeUpstream
) -> None:
    client = OpenAICompatibleClient(counting_server.url, "served-model")
    run = run_replay(home, sample_index, lambda: client)
    assert run.bundle.budget_unit == "chars" and run.bundle.budget == ReplayOptions().budget
    assert run.bundle.exemplars and run.bundle.trimmed == []
    sent = counting_server.requests[0].body["messages"][-1]["content"]
    assert f"[{run.bundle.exemplars[0].id}]" in sent


def test_eval_replay_compares_retrieval_with_the_baseline(
    home: Home, sample_index: SampleIndex, tmp_path: Path
) -> None:
    from distill.eval.replay_eval import evaluate_replay, load_tasks

    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_bytes(
        orjson.dumps({"task": TASK, "relevant_ids": [h.id for h in sample_index.hits]}) + b"\n"
    )
    model = ScriptedChatModel(grounded_answer_or_plain)
    arms = evaluate_replay(
        home, load_tasks(tasks_file), retriever=sample_index.retriever(), local=lambda: model
    )
    with_retrieval, baseline = (arm.summary() for arm in arms)
    assert with_retrieval["gate_pass_rate"] == 1.0 and with_retrieval["cites_relevant_rate"] == 1.0
    assert baseline["cites_relevant_rate"] == 0.0 and baseline["retrieved_relevant_rate"] == 0.0
    assert not (home.kb_dir / "replay_runs.jsonl").exists()  # eval runs are not evidence
