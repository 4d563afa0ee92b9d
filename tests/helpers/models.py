"""Stand-ins for the models and the index replay opens, and for the retry policy's sleep.

Each model double satisfies ``distill.replay.ChatModel``; ``CannedRetriever`` satisfies
``distill.index.PlaybookSearch``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from distill.index import SearchHit
from distill.index.relevance import TermStats
from distill.index.search import Mode
from distill.replay import ChatModel, Completion, ModelError
from distill.replay.clients import PromptStyle
from distill.replay.limits import Deadline
from distill.schemas import Bundle

from .answers import paced_answer

Step = str | Callable[[Bundle], str] | Exception


@dataclass
class Call:
    bundle: Bundle
    max_tokens: int


class ScriptedChatModel:
    """Stand-in for a chat model: plays its script in order (the last step repeats).

    A step is an answer, a function of the bundle that returns one, or an exception to raise.
    ``tokenizer=False`` behaves like a remote model whose tokenizer is unknown.
    """

    prompt_style: PromptStyle = "chat"

    def __init__(self, *script: Step, name: str = "scripted-local", tokenizer: bool = True):
        self.script = list(script)
        self.name = name
        self.endpoint = f"scripted:{name}"
        self.tokenizer = tokenizer
        self.context_tokens: int | None = None  # unknown: no task is refused for length
        self.calls: list[Call] = []

    def count_tokens(self, text: str) -> int | None:
        return max(1, len(text) // 4) if self.tokenizer else None

    def complete(
        self, bundle: Bundle, *, max_tokens: int, deadline: Deadline | None = None
    ) -> Completion:
        self.calls.append(Call(bundle, max_tokens))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        text = step(bundle) if callable(step) else step
        return Completion(text=text, prompt_tokens=321, completion_tokens=45, latency_ms=12.34)


class PacedModel:
    """Stand-in for the local model: ``answer(bundle)`` after ``pause`` seconds, or once
    ``release`` is set when one is given (a task that says "model down" fails as a 500 would);
    ``started`` is set at the first call, and the calls running at once are counted."""

    prompt_style: PromptStyle = "chat"

    def __init__(
        self,
        pause: float = 0.02,
        answer: Callable[[Bundle], str] = paced_answer,
        name: str = "paced-local",
        release: threading.Event | None = None,
    ) -> None:
        self.pause = pause
        self.answer = answer
        self.name = name
        self.release = release
        self.started = threading.Event()
        self.endpoint = f"scripted:{name}"
        self.context_tokens: int | None = None
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int | None:
        return max(1, len(text) // 4)

    def complete(
        self, bundle: Bundle, *, max_tokens: int, deadline: Deadline | None = None
    ) -> Completion:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if self.release is not None:
                assert self.release.wait(60), "the test never released the model"
            else:
                time.sleep(self.pause)
        finally:
            with self._lock:
                self.running -= 1
        if "model down" in bundle.task:
            raise ModelError("server answered 500", url="http://model", status=500, attempts=3)
        text = self.answer(bundle)
        return Completion(text=text, prompt_tokens=100, completion_tokens=20, latency_ms=1.0)


@dataclass
class CountingFactory:
    """A model factory that counts how often replay opens the model."""

    make: Callable[[], ChatModel]
    calls: int = 0

    def __call__(self) -> ChatModel:
        self.calls += 1
        return self.make()


def never_called() -> NoReturn:
    raise AssertionError("this factory must not be called")


@dataclass
class CannedRetriever:
    """Stand-in index with fixed hits, for forked processes that must not touch LanceDB."""

    hits: list[SearchHit]
    version: int = 1
    queries: list[str] = field(default_factory=list)

    @property
    def terms(self) -> TermStats:
        return TermStats.from_texts(hit.text for hit in self.hits)

    def search(self, query: str, *, mode: Mode = "hybrid", top_k: int = 8) -> list[SearchHit]:
        self.queries.append(query)
        return self.hits[:top_k]


@dataclass
class FakeSleep:
    """Records the delays the retry policy asks for instead of sleeping."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
