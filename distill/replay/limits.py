"""What one replay may spend: the model's context (in its tokens) and time (one deadline).

A task that cannot fit the model's context even without exemplars is refused before any model
call (``TaskTooLong``); a hung model server cannot hold a replay past its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from distill.errors import DistillError
from distill.index import SearchHit
from distill.replay.bundle import Counter, build_bundle
from distill.schemas import Bundle

DEFAULT_DEADLINE_S = 180.0
# BOS, chat-template tokens and the "\nAnswer:" of the embedded model's second call
PROMPT_MARGIN = 16


class TaskTooLong(DistillError):
    """The task does not fit the model's context, even with no exemplars."""

    hint = (
        "shorten the task or ask for fewer --max-tokens; for a server model with a larger "
        "context, set n_ctx under [local] in models/models.toml"
    )


@dataclass(frozen=True)
class Deadline:
    """One overall deadline for a replay: every attempt and retry of every model shares it."""

    seconds: float
    at: float  # on the time.monotonic() clock

    @classmethod
    def start(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        return self.left() <= 0.0

    def describe(self) -> str:
        return f"the replay deadline of {self.seconds:g} s"


def utf8_bytes(text: str) -> int:
    """The conservative token count of a model whose tokenizer is unknown: one token per UTF-8
    byte (a byte-level or byte-fallback tokenizer never makes more tokens than bytes)."""
    return len(text.encode())


def fit_bundle(
    task: str,
    hits: Sequence[SearchHit],
    *,
    budget_chars: int,
    count: Counter | None,
    context: int | None,
    max_tokens: int,
    model: str = "the model",
) -> Bundle:
    """The bundle for ``task``, fitted to the model.

    With a known tokenizer the budget is in its tokens (about 4 characters a token) and never
    more than the context leaves after the answer; otherwise it stays in characters. When the
    context is known and the task does not fit it on its own, ``TaskTooLong`` names the limit.
    """
    budget = budget_chars // 4 if count is not None else budget_chars
    room = None if context is None else context - max_tokens - PROMPT_MARGIN
    if room is not None and count is not None:
        budget = max(1, min(budget, room))
    bundle = build_bundle(task, hits, budget=budget, count=count)
    if room is not None:
        _check_task_fits(task, count, room, context or 0, max_tokens, model)
    return bundle


def _check_task_fits(
    task: str, count: Counter | None, room: int, context: int, max_tokens: int, model: str
) -> None:
    measure = count or utf8_bytes
    bare = build_bundle(task, [], budget=room, count=measure)
    if bare.used <= room:
        return
    task_tokens = measure(task)
    limit = max(0, room - (bare.used - task_tokens))
    unit = "tokens" if count is not None else "tokens (counted as UTF-8 bytes)"
    raise TaskTooLong(
        f"the task is {task_tokens:,} {unit}; {model} takes at most {limit:,}: a context of "
        f"{context:,} tokens, less {max_tokens:,} for the answer and the prompt around the task"
    )
