"""Model clients behind one interface: an OpenAI-compatible HTTP client here, embedded
llama.cpp in :mod:`distill.replay.embedded`.

Retries only named transient failures (connect errors, timeouts, 429, 5xx) with capped
exponential backoff and jitter; a 4xx that will fail again is never retried. A replay's
:class:`Deadline` bounds every request and retry together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from distill.errors import DistillError
from distill.replay.bundle import completion_answer
from distill.replay.limits import Deadline
from distill.schemas import Bundle
from distill.secrets import scrub

PromptStyle = Literal["chat", "completion"]
STOP = ["\nTask:"]
DEADLINE_HINT = (
    "raise --deadline (or $DISTILL_REPLAY_DEADLINE), or check the model server is answering"
)


class ModelError(DistillError):
    """A model call failed: carries status, URL and attempt count. No configured secret is
    kept in its message, whatever the server sent back."""

    def __init__(
        self, message: str, *, url: str, status: int | None, attempts: int, hint: str | None = None
    ) -> None:
        super().__init__(
            scrub(f"{message} (url {url}, status {status}, attempt {attempts})"),
            hint=scrub(hint or "check the model server is up and the URL/model are right"),
        )
        self.url, self.status, self.attempts = url, status, attempts


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float


class ChatModel(Protocol):
    name: str
    endpoint: str
    prompt_style: PromptStyle
    context_tokens: int | None  # the context window, when known: longer tasks are refused

    def complete(
        self, bundle: Bundle, *, max_tokens: int, deadline: Deadline | None = None
    ) -> Completion: ...

    def count_tokens(self, text: str) -> int | None: ...


@dataclass
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Any = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_delay)
            except ValueError:
                pass
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(backoff * (0.5 + random.random() / 2))  # jitter: never in lockstep


def public_url(url: str) -> str:
    """The URL without user:password — what may be logged."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # keeps "[::1]:8080" intact
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class OpenAICompatibleClient:
    """`/v1/chat/completions` (or `/v1/completions` for base models) on any compatible server.

    Ollama, llama.cpp server, vLLM, LM Studio and hosted APIs. Temperature 0 and a seed.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | None = None,
        prompt_style: PromptStyle = "chat",
        context_tokens: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        seed: int = 0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.name = model
        self.endpoint = public_url(self.base_url)
        self.prompt_style: PromptStyle = prompt_style
        self.context_tokens = context_tokens
        self.retry = retry or RetryPolicy()
        self.seed = seed
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def count_tokens(self, text: str) -> int | None:
        return None  # unknown for a remote model: the bundle budget falls back to characters

    def complete(
        self, bundle: Bundle, *, max_tokens: int, deadline: Deadline | None = None
    ) -> Completion:
        if self.prompt_style == "chat":
            path = "/v1/chat/completions"
            body: dict[str, Any] = {"messages": [m.model_dump() for m in bundle.messages]}
        else:
            path = "/v1/completions"
            body = {"prompt": bundle.prompt, "stop": STOP}
        body.update(model=self.name, temperature=0, seed=self.seed, max_tokens=max_tokens)
        started = time.perf_counter()
        payload, attempts = self._post(path, body, deadline)
        text = _choice_text(payload, self.prompt_style, self.endpoint + path, attempts)
        if self.prompt_style == "completion":
            text = completion_answer(bundle, text)
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _post(
        self, path: str, body: dict[str, Any], deadline: Deadline | None
    ) -> tuple[dict[str, Any], int]:
        url = self.base_url + path
        shown = self.endpoint + path
        failure = "no call made"
        for attempt in range(1, self.retry.attempts + 1):
            if deadline is not None and deadline.passed:  # nothing sent: no time was left
                raise ModelError(
                    f"{failure}; {deadline.describe()} passed before attempt {attempt}",
                    url=shown,
                    status=None,
                    attempts=attempt - 1,
                    hint=DEADLINE_HINT,
                )
            try:
                response = self._http.post(url, json=body, timeout=self._timeout(deadline))
            except (httpx.ConnectError, httpx.TimeoutException) as err:
                failure = f"{type(err).__name__}: {err}"
                self._backoff(attempt, failure, None, None, deadline, shown, err)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = response.headers.get("retry-after")
                failure = f"server answered {response.status_code}"
                self._backoff(attempt, failure, response.status_code, retry_after, deadline, shown)
                continue
            return _payload(response, shown, attempt), attempt
        raise AssertionError("unreachable")  # the loop returns or raises

    def _timeout(self, deadline: Deadline | None) -> httpx.Timeout:
        """Each request's timeouts, cut to the time the replay has left."""
        if deadline is None:
            return httpx.Timeout(self._read_timeout, connect=self._connect_timeout)
        left = deadline.left()
        return httpx.Timeout(
            min(self._read_timeout, left), connect=min(self._connect_timeout, left)
        )

    def _backoff(
        self,
        attempt: int,
        failure: str,
        status: int | None,
        retry_after: str | None,
        deadline: Deadline | None,
        shown: str,
        cause: Exception | None = None,
    ) -> None:
        """Sleep before the next attempt; raise after the last one, or when the deadline would
        pass before the next one could start."""
        delay = self.retry.delay(attempt, retry_after)
        more = attempt < self.retry.attempts
        if more and (deadline is None or delay < deadline.left()):
            self.retry.sleep(delay)
            return
        hint = None
        if deadline is not None and (more or deadline.passed):
            failure += f"; {deadline.describe()} left no time for another attempt"
            hint = DEADLINE_HINT
        raise ModelError(failure, url=shown, status=status, attempts=attempt, hint=hint) from cause

    def close(self) -> None:
        self._http.close()


def _payload(response: httpx.Response, shown: str, attempt: int) -> dict[str, Any]:
    """The JSON object of a final answer; a 4xx (never retried) or anything else is an error."""
    if response.status_code >= 400:
        raise ModelError(
            # scrubbed before it is cut: a secret cut in half would not be found afterwards
            f"server refused the request: {scrub(response.text)[:200]}",
            url=shown,
            status=response.status_code,
            attempts=attempt,
        )
    try:
        payload = response.json()
    except ValueError as err:
        raise ModelError(
            "the answer is not JSON", url=shown, status=response.status_code, attempts=attempt
        ) from err
    if not isinstance(payload, dict):
        raise ModelError(
            "the answer is not a JSON object",
            url=shown,
            status=response.status_code,
            attempts=attempt,
        )
    return payload


def _choice_text(payload: dict[str, Any], style: PromptStyle, url: str, attempts: int) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError("the answer has no choices", url=url, status=200, attempts=attempts)
    choice = choices[0]
    text = (choice.get("message") or {}).get("content") if style == "chat" else choice.get("text")
    if not isinstance(text, str):
        raise ModelError("the choice has no text", url=url, status=200, attempts=attempts)
    return text.strip()
