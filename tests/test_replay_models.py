"""The real local model: llama-cpp-python in-process, and behind a real llama.cpp server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distill.index import SearchHit
from distill.replay import LlamaCppModel, OpenAICompatibleClient, build_bundle
from distill.replay.config import ensure_gguf
from distill.schemas import Bundle

from .conftest import REPO

pytestmark = pytest.mark.slow
GGUF = REPO / "models" / "gemma-3-270m-q4_k_m.gguf"
TASK = "add an idempotency key to the payments webhook"


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp", reason="make install-local builds llama-cpp-python")
    return ensure_gguf(GGUF)


def _bundle() -> Bundle:
    return build_bundle(TASK, [])


def test_embedded_model_answers_and_repeats_exactly(gguf: Path) -> None:
    model = LlamaCppModel(gguf, n_ctx=1024)
    assert model.prompt_style == "completion"  # a base model with no chat template
    assert model.count_tokens("Task: hello") is not None
    first = model.complete(_bundle(), max_tokens=24)
    second = model.complete(_bundle(), max_tokens=24)
    assert first.text and first.completion_tokens and first.completion_tokens <= 24
    assert first.text == second.text  # temperature 0 + state reset: exact repeat


def _hit(id_: str, instruction: str, answer: str) -> SearchHit:
    return SearchHit(
        id=id_,
        score=0.9,
        title=instruction,
        text=f"{instruction}\n\n{answer}",
        category="accepted",
        source=id_.split(":")[0],
        task_id="T-1",
        file_paths=[],
        validation_steps=[],
        sig_hash="0" * 64,
    )


def test_embedded_model_can_only_cite_an_exemplar_it_was_shown(gguf: Path) -> None:
    hits = [
        _hit(
            "audits:AUD-7",
            "Make the refund webhook idempotent",
            "Store each event id in idempotency_keys and skip ids already seen.\n"
            "- verify a replayed event is ignored",
        ),
        _hit(
            "scrum_reviews:SR-3",
            "Retry failed payouts",
            "Queue the payout again with backoff.\n- verify a failed payout is retried once",
        ),
    ]
    bundle = build_bundle(TASK, hits)
    model = LlamaCppModel(gguf, n_ctx=2048)
    first = model.complete(bundle, max_tokens=48)
    assert first.completion_tokens and first.completion_tokens <= 48  # source + answer together
    answer, _, cited = first.text.rpartition("\nSources: [")
    assert answer.strip() and cited.rstrip("]") in {"audits:AUD-7", "scrum_reviews:SR-3"}
    assert model.complete(bundle, max_tokens=48).text == first.text  # still exact


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gguf: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--model_alias",
            "gemma",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not start within 90 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_http_client_talks_to_a_real_llama_cpp_server(llama_server: str) -> None:
    client = OpenAICompatibleClient(llama_server + "/v1", "gemma", prompt_style="completion")
    completion = client.complete(_bundle(), max_tokens=16)
    assert completion.text and completion.completion_tokens
    assert client.endpoint == llama_server
    assert "\nTask:" not in completion.text  # the completion style's stop sequence held
    # No exact-repeat assertion here: the server reuses its KV cache across requests, which can
    # change greedy output of a small model; the embedded path resets its state instead.
    client.close()
