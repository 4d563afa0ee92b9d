"""distill serve: a real uvicorn server on 127.0.0.1 and a free port, over the sample index.

Retrieval is real (LanceDB on disk, the seeded hashing embedder); the model is ``PacedModel``
(tests/helpers), a stand-in that answers from the bundle after a short pause and records how many
calls overlap.
The OpenAI endpoint is called through the ``openai`` client itself.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from distill.errors import DistillError
from distill.home import Home
from distill.index import HashingEmbedder, PlaybookStore, Retriever
from distill.index.stage import index_export
from distill.replay import LlamaCppModel, ReplayOptions, replay
from distill.replay.config import ensure_gguf
from distill.schemas import Attempt, ReplayRun, Usage
from distill.serve import (
    GenerationQueue,
    ServeSettings,
    ServeState,
    is_loopback,
)
from distill.serve.chat import ChatAnswer

from .conftest import REPO
from .helpers.answers import TASK
from .helpers.models import PacedModel
from .helpers.replay import SampleIndex, log_lines
from .helpers.serve import CHAT, MAX_BODY, MAX_TASK, TOKEN, logged, make_state, post, running

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": TASK}]


@pytest.fixture(scope="module")
def auth_url(
    tmp_path_factory: pytest.TempPathFactory, sample_index: SampleIndex, model: PacedModel
) -> Iterator[str]:
    state = make_state(tmp_path_factory.mktemp("serve-auth"), sample_index, model, TOKEN)
    with running(state) as base:
        yield base


# --- replay and search -------------------------------------------------------------------------


def test_replay_dry_run_is_the_cli_run_and_writes_nothing_the_same_way(
    url: str, state: ServeState, sample_index: SampleIndex, home: Home
) -> None:
    response = post(url, "/v1/replay", {"task": TASK, "dry_run": True, "task_id": "LL-106"})
    assert response.status_code == 200, response.text
    run = ReplayRun.model_validate_json(response.content)
    assert run.verdict == "dry_run" and run.attempts == [] and run.task_id == "LL-106"
    assert run.run_id not in logged(state)  # a dry run writes nothing, as on the CLI
    local = replay(
        home,
        TASK,
        ReplayOptions(dry_run=True, task_id="LL-106"),
        retriever=sample_index.retriever(),
        local=lambda: pytest.fail("a dry run opens no model"),
    )
    assert run.model_dump(exclude={"run_id", "created_at"}) == local.model_dump(
        exclude={"run_id", "created_at"}
    )


def test_replay_with_the_model_is_gated_and_logged(url: str, state: ServeState) -> None:
    response = post(url, "/v1/replay", {"task": TASK, "top_k": 5, "max_tokens": 64})
    run = ReplayRun.model_validate_json(response.content)
    assert run.verdict == "passed" and run.cited_ids and len(run.hits) == 5
    (attempt,) = run.attempts
    assert attempt.model == "paced-local" and attempt.gate and attempt.gate.passed
    assert logged(state)[run.run_id] == run
    health = httpx.get(url + "/healthz").json()
    assert health["model"]["loaded"] and health["model"]["name"] == "paced-local"


def test_search_returns_hits_with_scores_and_provenance(
    url: str, sample_index: SampleIndex
) -> None:
    body = post(url, "/v1/search", {"query": TASK, "top_k": 4, "mode": "hybrid"}).json()
    expected = Retriever(PlaybookStore(sample_index.uri)).search(TASK, top_k=4)
    assert body["index_version"] == sample_index.version
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4]
    for hit, want in zip(body["hits"], expected, strict=True):
        assert hit["score"] == pytest.approx(want.score)
        assert hit["source"] == want.source and hit["sig_hash"] == want.sig_hash
    fts = post(url, "/v1/search", {"query": "tax", "mode": "fts", "category": "accepted"}).json()
    assert fts["hits"] and {h["category"] for h in fts["hits"]} == {"accepted"}


def test_health_models_and_stats(url: str, sample_index: SampleIndex) -> None:
    health = httpx.get(url + "/healthz").json()
    assert health["index"]["version"] == sample_index.version
    assert health["index"]["embedder"] == "hash-384" and health["model"]["id"] == "distill-replay"
    models = httpx.get(url + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["distill-replay"]
    stats = httpx.get(url + "/v1/stats").json()
    assert stats["requests"]["by_endpoint"]["/healthz"] >= 1 and stats["queue_depth"] == 0
    assert set(stats["replays"]) == {"passed", "failed", "abstained", "dry_run"}
    assert stats["uptime_s"] >= 0


def test_an_index_update_is_served_without_a_restart(
    tmp_path: Path, sample_index: SampleIndex, model: PacedModel
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(Path(sample_index.uri).parent, root)
    home = Home(root.resolve())
    state = ServeState(home, ServeSettings(), index_uri=str(home.index_dir), local=lambda: model)
    with running(state) as base:
        before = httpx.get(base + "/healthz").json()["index"]["version"]
        embedder = state.retriever().embedder
        index_export(home, str(home.index_dir), HashingEmbedder(), rebuild=True)
        after = httpx.get(base + "/healthz").json()["index"]["version"]
        hits = post(base, "/v1/search", {"query": TASK}).json()
    assert after > before and hits["index_version"] == after and hits["hits"]
    assert state.retriever().embedder is embedder  # same embedder identity: not reloaded


def test_a_model_that_cannot_load_gets_503_with_the_hint(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    def missing() -> Any:
        raise DistillError("llama-cpp-python is not installed", hint="make install-local")

    home = Home(tmp_path.resolve())
    state = ServeState(home, ServeSettings(), index_uri=sample_index.uri, local=missing)
    with running(state) as base:
        dry = post(base, "/v1/replay", {"task": TASK, "dry_run": True})
        failed = post(base, "/v1/replay", {"task": TASK})
        chat = post(base, CHAT, {"model": "distill-replay", "messages": USER})
        health = httpx.get(base + "/healthz").json()
    assert dry.status_code == 200 and not health["model"]["loaded"]
    for response in (failed, chat):
        assert response.status_code == 503
        error = response.json()["error"]
        assert "not installed" in error["message"] and error["hint"] == "make install-local"
    assert log_lines(home) == []  # the dry run writes nothing; the others never ran


# --- the OpenAI-compatible endpoint ------------------------------------------------------------


def test_openai_client_gets_a_grounded_gated_logged_answer(url: str, state: ServeState) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="distill-replay",
        messages=[
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": [{"type": "text", "text": TASK}]},
        ],
        max_tokens=64,
        temperature=0.7,
        extra_body={"distill": {"task_id": "LL-106", "top_k": 6}},
    )
    extension = (completion.model_extra or {})["distill"]
    run = logged(state)[extension["run_id"]]
    assert completion.object == "chat.completion" and completion.model == "distill-replay"
    assert completion.choices[0].message.content == run.final_answer
    assert completion.choices[0].finish_reason == "stop"
    assert extension["verdict"] == "passed" and extension["cited_ids"] == run.cited_ids
    assert run.task == TASK and run.task_id == "LL-106" and len(run.hits) == 6
    assert completion.usage and completion.usage.total_tokens == 120
    assert [m.id for m in client.models.list()] == ["distill-replay"]
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TASK}])


def test_a_failing_model_is_a_502_for_chat_and_a_logged_attempt_for_replay(
    url: str, state: ServeState
) -> None:
    task = f"model down: {TASK}"
    chat = post(
        url, CHAT, {"model": "distill-replay", "messages": [{"role": "user", "content": task}]}
    )
    assert chat.status_code == 502 and "server answered 500" in chat.json()["error"]["message"]
    run_id = chat.json()["error"]["hint"].rsplit(" ", 1)[-1]
    assert logged(state)[run_id].verdict == "failed"
    run = ReplayRun.model_validate_json(post(url, "/v1/replay", {"task": task}).content)
    assert run.verdict == "failed" and run.attempts[0].error  # as `distill replay` logs it


def test_openai_client_streams_the_same_answer_in_chunks(url: str, state: ServeState) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="distill-replay",
        messages=[{"role": "user", "content": TASK}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len(chunks) > 4
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (finish,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    extension = (finish.model_extra or {})["distill"]
    run = logged(state)[extension["run_id"]]
    assert text == run.final_answer and extension["verdict"] == "passed"
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == 20
    raw = httpx.post(
        url + "/v1/chat/completions",
        json={
            "model": "distill-replay",
            "messages": [{"role": "user", "content": TASK}],
            "stream": True,
        },
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n") and raw.headers["x-distill-verdict"] == "passed"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/replay", b'{"task": "unclosed', 400, "not valid JSON"),
        ("/v1/replay", b"[1, 2]", 422, "valid dictionary"),
        ("/v1/replay", {"task": TASK, "model_url": "http://evil"}, 422, "model_url: Extra"),
        ("/v1/replay", {"task": TASK, "top_k": 0}, 422, "top_k: Input should be greater"),
        ("/v1/replay", {"task": "x" * (MAX_TASK + 1)}, 422, "over the limit of 2,000"),
        ("/v1/replay", {"task": "   "}, 422, "task: empty"),
        ("/v1/replay", {}, 422, "task: Field required"),
        ("/v1/search", {"query": TASK, "mode": "regex"}, 422, "mode: Input should be"),
        (CHAT, {"model": "distill-replay", "messages": []}, 422, "messages: List should have"),
        (
            CHAT,
            {"model": "distill-replay", "messages": [{"role": "system", "content": "x"}]},
            422,
            "no user message",
        ),
        (CHAT, {"model": "distill-replay", "messages": USER, "n": 2}, 422, "n: Input should be"),
        (CHAT, {"model": "distill-replay", "messages": USER, "functions": []}, 422, "functions"),
        (CHAT, {"model": "other", "messages": USER}, 404, "serves 'distill-replay'"),
        ("/v1/replay", {"task": TASK, "max_tokens": 5000}, 422, "over this server's limit"),
        (CHAT, {"model": "distill-replay", "messages": USER, "max_tokens": 5000}, 422, "limit"),
        ("/v1/nowhere", {"task": TASK}, 404, "Not Found"),
    ],
)
def test_bad_input_gets_a_clear_4xx(url: str, path: str, body: Any, status: int, says: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.post(url + path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error["message"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_a_wrong_method_is_a_405_in_the_same_error_shape(url: str) -> None:
    response = httpx.get(url + "/v1/replay")
    assert response.status_code == 405
    assert response.json()["error"]["message"] == "Method Not Allowed"


def test_chat_usage_counts_every_attempt_and_an_escalation_has_its_own_budget(
    url: str,
) -> None:
    dry = ReplayRun.model_validate_json(
        post(url, "/v1/replay", {"task": TASK, "dry_run": True}).content
    )

    def attempt(role: str, completion_tokens: int) -> Attempt:
        return Attempt(
            role=role,
            model=role,
            endpoint="scripted:" + role,
            prompt_style="chat",
            latency_ms=1.0,
            usage=Usage(prompt_tokens=100, completion_tokens=completion_tokens),
            response="an answer",
            gate=None,
        )

    escalated = dry.model_copy(
        update={"attempts": [attempt("local", 200), attempt("escalation", 300)], "escalated": True}
    )
    answer = ChatAnswer(escalated, "distill-replay", max_tokens=200)
    assert answer.finish_reason == "stop"  # 300 of the escalation's 400, not past 200
    assert answer.usage == {"prompt_tokens": 200, "completion_tokens": 500, "total_tokens": 700}
    capped = ChatAnswer(dry.model_copy(update={"attempts": [attempt("local", 200)]}), "m", 200)
    assert capped.finish_reason == "length"


def test_oversized_bodies_get_413_with_or_without_a_length(url: str, state: ServeState) -> None:
    before = len(log_lines(state.home))
    big = orjson.dumps({"task": "x" * (MAX_BODY + 10)})
    sized = httpx.post(
        url + "/v1/replay", content=big, headers={"Content-Type": "application/json"}
    )
    assert sized.status_code == 413 and "16,384 bytes" in sized.json()["error"]["message"]
    chunked = httpx.post(
        url + "/v1/replay",
        content=iter([big[:8000], big[8000:]]),  # no Content-Length: chunked
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "body_too_large"
    assert len(log_lines(state.home)) == before


def test_non_json_posts_and_foreign_host_headers_are_refused(url: str) -> None:
    form = httpx.post(url + "/v1/replay", content=b"task=x", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json()["error"]["hint"]
    rebinding = httpx.get(url + "/healthz", headers={"Host": "attacker.example:8787"})
    assert rebinding.status_code == 400 and rebinding.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(url.replace("127.0.0.1", "localhost") + "/healthz").status_code == 200
    shouted = httpx.get(url + "/healthz", headers={"Host": "LOCALHOST:8787"})
    assert shouted.status_code == 200


def test_a_server_bound_to_another_loopback_address_accepts_its_own_name() -> None:
    allowed = ServeSettings(host="127.0.0.2").allowed_hosts()
    assert allowed is not None and "127.0.0.2" in allowed and "attacker.example" not in allowed
    assert ServeSettings(host="0.0.0.0", token=SecretStr(TOKEN)).allowed_hosts() is None


# --- security ----------------------------------------------------------------------------------


def test_with_a_token_every_request_needs_it_and_no_log_shows_it(
    auth_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/healthz", "/v1/models", "/v1/stats"):
        refused = httpx.get(auth_url + path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    wrong = post(
        auth_url, "/v1/replay", {"task": TASK}, headers={"Authorization": f"Bearer {TOKEN}x"}
    )
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    assert (
        post(auth_url, "/v1/replay", {"task": TASK}, headers={"Authorization": TOKEN}).status_code
        == 401
    )
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(auth_url + "/healthz", headers=good).status_code == 200
    assert (
        post(auth_url, "/v1/replay", {"task": TASK, "dry_run": True}, headers=good).status_code
        == 200
    )
    client = openai.OpenAI(base_url=auth_url + "/v1", api_key=TOKEN, max_retries=0)
    answer = client.chat.completions.create(model="distill-replay", messages=USER)
    assert answer.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=auth_url + "/v1", api_key="nope", max_retries=0).models.list()
    assert "POST /v1/chat/completions" in caplog.text  # the access log was captured…
    assert TOKEN not in caplog.text  # …and the token is nowhere in it


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("myhost.example", False),
        ("", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- concurrency and shutdown ------------------------------------------------------------------


def test_200_concurrent_searches_all_succeed(url: str) -> None:
    async def storm() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/v1/search", json={"query": f"{TASK} {n}", "top_k": 5})
                    for n in range(200)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(storm()) == [200] * 200


def test_concurrent_replays_queue_for_the_model_and_log_whole_lines(
    url: str, state: ServeState, model: PacedModel
) -> None:
    before = set(logged(state))
    calls = model.calls

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/v1/replay", json={"task": f"{TASK} #{n}"}) for n in range(12)),
                *(client.post("/v1/search", json={"query": TASK}) for _ in range(12)),
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 24
    assert model.calls - calls == 12 and model.most_at_once == 1  # queued, never overlapping
    ids = {ReplayRun.model_validate_json(r.content).run_id for r in responses[:12]}
    after = logged(state)  # every line parses: none interleaved
    assert set(after) - before == ids


def test_the_generation_queue_runs_jobs_in_arrival_order() -> None:
    queue = GenerationQueue(slots=1)
    started = threading.Event()
    release = threading.Event()
    order: list[int] = []

    def blocker() -> None:
        started.set()
        release.wait(5)

    def job(n: int) -> int:
        order.append(n)
        return n

    async def main() -> list[int]:
        first = asyncio.ensure_future(queue.run(blocker))
        await asyncio.sleep(0)
        started.wait(5)
        jobs = [asyncio.ensure_future(queue.run(partial(job, n))) for n in range(20)]
        await asyncio.sleep(0.05)
        depth = queue.depth
        release.set()
        await first
        assert depth == 21
        return list(await asyncio.gather(*jobs))

    assert asyncio.run(main()) == list(range(20)) and order == list(range(20))
    queue.close()


@pytest.mark.slow
def test_the_real_gguf_answers_through_the_openai_endpoint(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    pytest.importorskip("llama_cpp", reason="make install-local builds llama-cpp-python")
    gguf = ensure_gguf(REPO / "models" / "gemma-3-270m-q4_k_m.gguf")
    home = Home(tmp_path.resolve())
    home.kb_dir.mkdir(parents=True)
    state = ServeState(
        home,
        ServeSettings(max_tokens=24),
        index_uri=sample_index.uri,
        local=lambda: LlamaCppModel(gguf, n_ctx=2048),
    )
    with running(state) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(model="distill-replay", messages=USER)
    extension = (completion.model_extra or {})["distill"]
    (line,) = log_lines(home)
    run = ReplayRun.model_validate_json(line)
    assert completion.choices[0].message.content == run.final_answer != ""
    assert run.run_id == extension["run_id"] and run.verdict == extension["verdict"]
    assert run.attempts[0].endpoint == f"embedded:{gguf.name}"
    assert run.attempts[0].usage.completion_tokens and run.attempts[0].usage.completion_tokens <= 24
