"""The OpenAI-compatible client: request shape, retries, errors, secrets.

Most tests run the real client against ``FaultInjectingTransport``, a stand-in for the network
that plays a script of faults and replies; ``FakeUpstream`` (tests/helpers) is a real HTTP
server on 127.0.0.1 speaking the OpenAI shape.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from distill.replay import ModelError, OpenAICompatibleClient, RetryPolicy
from distill.replay.clients import STOP, public_url

from .helpers.models import FakeSleep
from .helpers.replay import small_bundle
from .helpers.upstream import FakeUpstream, closed_port

BASE = "http://models.test/v1"
CHAT_PATH = "/v1/chat/completions"
COMPLETION_PATH = "/v1/completions"


# --- stand-ins ---------------------------------------------------------------------------------


def chat_reply(text: str, status: int = 200, **headers: str) -> httpx.Response:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
    }
    return httpx.Response(status, json=body, headers=headers)


def completion_reply(text: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "text": text}], "usage": {}})


class FaultInjectingTransport(httpx.MockTransport):
    """Stand-in for the network: each request gets the next step of the script.

    A step is an ``httpx.Response`` to return or an exception to raise (a timeout, a refused
    connection). A request beyond the script fails the test: retrying too often is a bug too.
    """

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script: deque[httpx.Response | Exception] = deque(script)
        self.requests: list[httpx.Request] = []
        super().__init__(self._play)

    def _play(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request #{len(self.requests)} to {request.url}")
        step = self.script.popleft()
        if isinstance(step, Exception):
            raise step
        return step

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def client_for(
    transport: httpx.BaseTransport,
    *,
    attempts: int = 3,
    sleep: FakeSleep | None = None,
    base_url: str = BASE,
    **kwargs: Any,
) -> OpenAICompatibleClient:
    retry = RetryPolicy(
        attempts=attempts, base_delay=0.5, max_delay=8.0, sleep=sleep or FakeSleep()
    )
    return OpenAICompatibleClient(
        base_url, "test-model", transport=transport, retry=retry, **kwargs
    )


@pytest.fixture
def counting_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


# --- request shape -----------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", [BASE, BASE + "/", "http://models.test"])
def test_chat_style_posts_messages_at_temperature_zero_with_seed_and_model(base_url: str) -> None:
    transport = FaultInjectingTransport(chat_reply("  Round each line [audits:AUD-1].  "))
    bundle = small_bundle()
    client = client_for(transport, base_url=base_url, seed=7)
    completion = client.complete(bundle, max_tokens=123)
    (request,) = transport.requests
    assert request.method == "POST" and str(request.url) == "http://models.test" + CHAT_PATH
    body = transport.bodies()[0]
    assert body["messages"] == [m.model_dump() for m in bundle.messages]
    assert (body["model"], body["temperature"], body["seed"], body["max_tokens"]) == (
        "test-model",
        0,
        7,
        123,
    )
    assert "prompt" not in body and "stop" not in body
    assert completion.text == "Round each line [audits:AUD-1]."
    assert (completion.prompt_tokens, completion.completion_tokens) == (40, 9)
    assert completion.latency_ms >= 0


def test_completion_style_posts_the_few_shot_prompt_and_stops_at_the_next_task() -> None:
    # the prompt ends at "Sources: [": the model names its source, then answers after it
    transport = FaultInjectingTransport(
        completion_reply("audits:AUD-1]\nAnswer: Round each line. ")
    )
    bundle = small_bundle()
    client = client_for(transport, prompt_style="completion", seed=3)
    completion = client.complete(bundle, max_tokens=50)
    assert transport.requests[0].url.path == COMPLETION_PATH
    body = transport.bodies()[0]
    assert body["prompt"] == bundle.prompt
    assert body["prompt"].endswith("Task: Fix invoice rounding\nSources: [")
    assert (
        "Task: Round invoice totals per line\nSources: [audits:AUD-1]\nAnswer: " in body["prompt"]
    )
    assert body["stop"] == STOP == ["\nTask:"]
    assert (body["model"], body["temperature"], body["seed"], body["max_tokens"]) == (
        "test-model",
        0,
        3,
        50,
    )
    assert "messages" not in body
    assert completion.text == "Round each line.\nSources: [audits:AUD-1]"  # in the chat form
    assert completion.prompt_tokens is None and completion.completion_tokens is None


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
    ],
    ids=["read-timeout", "connect-timeout", "refused"],
)
def test_a_transient_network_fault_is_retried_then_succeeds(fault: Exception) -> None:
    sleep = FakeSleep()
    transport = FaultInjectingTransport(fault, chat_reply("second time lucky"))
    completion = client_for(transport, sleep=sleep).complete(small_bundle(), max_tokens=10)
    assert completion.text == "second time lucky"
    assert len(transport.requests) == 2 and len(sleep.delays) == 1
    assert 0.25 <= sleep.delays[0] <= 0.5  # first backoff: base_delay with jitter


def test_connection_refused_every_time_raises_model_error_after_all_attempts() -> None:
    sleep = FakeSleep()
    transport = FaultInjectingTransport(*[httpx.ConnectError("connection refused")] * 4)
    client = client_for(transport, attempts=4, sleep=sleep)
    with pytest.raises(ModelError) as info:
        client.complete(small_bundle(), max_tokens=10)
    err = info.value
    assert (err.url, err.status, err.attempts) == (BASE.removesuffix("/v1") + CHAT_PATH, None, 4)
    assert "http://models.test/v1/chat/completions" in str(err)
    assert "status None" in str(err) and "attempt 4" in str(err)
    assert isinstance(err.__cause__, httpx.ConnectError)
    assert err.hint  # tells the user what to check
    assert len(transport.requests) == 4 and len(sleep.delays) == 3


def test_429_honours_retry_after_then_succeeds() -> None:
    sleep = FakeSleep()
    transport = FaultInjectingTransport(
        chat_reply("slow down", status=429, **{"Retry-After": "2"}), chat_reply("ok now")
    )
    completion = client_for(transport, sleep=sleep).complete(small_bundle(), max_tokens=10)
    assert completion.text == "ok now"
    assert sleep.delays == [2.0] and len(transport.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_retried_then_succeeds(status: int) -> None:
    sleep = FakeSleep()
    transport = FaultInjectingTransport(httpx.Response(status, text="busy"), chat_reply("ok"))
    assert client_for(transport, sleep=sleep).complete(small_bundle(), max_tokens=10).text == "ok"
    assert len(transport.requests) == 2 and len(sleep.delays) == 1


def test_5xx_every_time_reports_the_last_status_and_attempt_count() -> None:
    transport = FaultInjectingTransport(*[httpx.Response(503, text="down")] * 3)
    with pytest.raises(ModelError) as info:
        client_for(transport).complete(small_bundle(), max_tokens=10)
    assert (info.value.status, info.value.attempts) == (503, 3)
    assert "status 503" in str(info.value) and "attempt 3" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_4xx_is_never_retried(status: int) -> None:
    sleep = FakeSleep()
    refusal = httpx.Response(status, json={"error": {"message": "model 'x' not found"}})
    transport = FaultInjectingTransport(refusal, chat_reply("never reached"))
    with pytest.raises(ModelError) as info:
        client_for(transport, sleep=sleep).complete(small_bundle(), max_tokens=10)
    assert (info.value.status, info.value.attempts) == (status, 1)
    assert "not found" in str(info.value)  # the server's reason reaches the user
    assert len(transport.requests) == 1 and sleep.delays == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (httpx.Response(200, content=b"<html>proxy error</html>"), "not JSON"),
        (httpx.Response(200, content=b'{"choices": [ truncated'), "not JSON"),
        (httpx.Response(200, json=["a", "list"]), "not a JSON object"),
        (httpx.Response(200, json={"choices": []}), "no choices"),
        (httpx.Response(200, json={"object": "error"}), "no choices"),
        (httpx.Response(200, json={"choices": [{"message": {"content": None}}]}), "no text"),
    ],
    ids=["html", "truncated", "list", "empty-choices", "no-choices", "null-content"],
)
def test_a_malformed_answer_is_a_model_error_not_a_crash(
    reply: httpx.Response, message: str
) -> None:
    transport = FaultInjectingTransport(reply)
    with pytest.raises(ModelError, match=message) as info:
        client_for(transport).complete(small_bundle(), max_tokens=10)
    assert "models.test/v1/chat/completions" in str(info.value)
    assert len(transport.requests) == 1


def test_a_malformed_answer_after_a_retry_reports_the_real_attempt_count() -> None:
    transport = FaultInjectingTransport(
        httpx.Response(503, text="busy"), httpx.Response(200, json={"choices": []})
    )
    with pytest.raises(ModelError) as info:
        client_for(transport).complete(small_bundle(), max_tokens=10)
    assert info.value.attempts == 2


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, sleep=FakeSleep())
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (10, 4.0), (60, 4.0)]:
        delays = [policy.delay(attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
    assert len({policy.delay(2, None) for _ in range(20)}) > 1  # jittered, not in lockstep


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [("2", 2.0, 2.0), ("0.5", 0.5, 0.5), ("3600", 4.0, 4.0), ("soon", 0.5, 1.0), (None, 0.5, 1.0)],
)
def test_retry_after_is_honoured_but_capped(
    retry_after: str | None, low: float, high: float
) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    assert low <= policy.delay(1, retry_after) <= high


# --- secrets -----------------------------------------------------------------------------------


def test_the_api_key_goes_only_into_the_bearer_header() -> None:
    key = "sk-test-7c1d0e9a"
    transport = FaultInjectingTransport(chat_reply("ok"), httpx.Response(400, text="bad request"))
    client = client_for(transport, api_key=SecretStr(key))
    client.complete(small_bundle(), max_tokens=10)
    assert transport.requests[0].headers["authorization"] == f"Bearer {key}"
    assert (
        key not in str(transport.requests[0].url)
        and key not in transport.requests[0].content.decode()
    )
    assert key not in client.endpoint
    with pytest.raises(ModelError) as info:
        client.complete(small_bundle(), max_tokens=10)
    assert key not in str(info.value) and key not in info.value.url


def test_without_a_key_no_authorization_header_is_sent() -> None:
    transport = FaultInjectingTransport(chat_reply("ok"))
    client_for(transport).complete(small_bundle(), max_tokens=10)
    assert "authorization" not in transport.requests[0].headers


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@host:8080/v1", "https://host:8080/v1"),
        ("https://sk-only@api.example.com/v1", "https://api.example.com/v1"),
        ("https://api.example.com/v1?api-key=sk-q#frag", "https://api.example.com/v1"),
        ("http://localhost:11434", "http://localhost:11434"),
    ],
)
def test_public_url_strips_credentials_and_query(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_public_url_keeps_an_ipv6_host_valid() -> None:
    assert public_url("http://user:pw@[::1]:8080/v1") == "http://[::1]:8080/v1"


def test_credentials_in_the_base_url_never_reach_the_endpoint_or_errors() -> None:
    transport = FaultInjectingTransport(httpx.Response(400, text="no"))
    client = client_for(transport, base_url="https://user:pw-s3cret@host:8080/v1")
    assert client.endpoint == "https://host:8080"
    with pytest.raises(ModelError) as info:
        client.complete(small_bundle(), max_tokens=10)
    assert "pw-s3cret" not in str(info.value) and "pw-s3cret" not in info.value.url
    assert info.value.url == "https://host:8080/v1/chat/completions"


# --- a real HTTP server ------------------------------------------------------------------------


def test_the_client_works_over_real_http(counting_server: FakeUpstream) -> None:
    counting_server.script.extend(["chat answer", "audits:AUD-1]\nAnswer: completion answer"])
    bundle = small_bundle()
    chat = OpenAICompatibleClient(counting_server.url, "served-model", seed=5)
    completion = OpenAICompatibleClient(
        counting_server.url, "served-model", prompt_style="completion"
    )
    try:
        assert chat.complete(bundle, max_tokens=20).text == "chat answer"
        done = completion.complete(bundle, max_tokens=20)
    finally:
        chat.close()
        completion.close()
    assert done.text == "completion answer\nSources: [audits:AUD-1]"
    assert done.completion_tokens == 5
    first, second = counting_server.requests
    assert (first.path, second.path) == (CHAT_PATH, COMPLETION_PATH)
    assert first.body["messages"][-1]["content"].endswith("Task: Fix invoice rounding")
    assert (first.body["model"], first.body["seed"], first.body["temperature"]) == (
        "served-model",
        5,
        0,
    )
    assert second.body["stop"] == ["\nTask:"] and second.body["prompt"] == bundle.prompt
    assert chat.endpoint == f"http://127.0.0.1:{counting_server.port}"


def test_a_real_slow_server_times_out_and_is_retried(counting_server: FakeUpstream) -> None:
    counting_server.script.extend([1.0, "after the timeout"])
    sleep = FakeSleep()
    client = OpenAICompatibleClient(
        counting_server.url, "m", read_timeout=0.2, retry=RetryPolicy(attempts=2, sleep=sleep)
    )
    try:
        assert client.complete(small_bundle(), max_tokens=5).text == "after the timeout"
    finally:
        client.close()
    assert len(counting_server.requests) == 2 and len(sleep.delays) == 1


def test_a_real_5xx_then_success(counting_server: FakeUpstream) -> None:
    counting_server.script.extend([503, "recovered"])
    client = OpenAICompatibleClient(
        counting_server.url, "m", retry=RetryPolicy(attempts=3, sleep=FakeSleep())
    )
    try:
        assert client.complete(small_bundle(), max_tokens=5).text == "recovered"
    finally:
        client.close()
    assert len(counting_server.requests) == 2


def test_a_real_refused_connection_is_a_model_error_with_url_and_attempts() -> None:
    port = closed_port()
    client = OpenAICompatibleClient(
        f"http://127.0.0.1:{port}/v1", "m", retry=RetryPolicy(attempts=2, sleep=FakeSleep())
    )
    with pytest.raises(ModelError) as info:
        client.complete(small_bundle(), max_tokens=5)
    assert (info.value.status, info.value.attempts) == (None, 2)
    assert f"127.0.0.1:{port}/v1/chat/completions" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
