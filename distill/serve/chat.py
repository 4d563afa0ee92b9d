"""The OpenAI chat-completions shape: the request an agent sends, the answer and stream it reads.

The last user message is the task; everything else in the conversation is accepted and not
used (the context is what retrieval finds). Sampling parameters are accepted and ignored:
replay is greedy with a fixed seed, so answers repeat.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from distill.replay.run import abstain_answer
from distill.schemas import ReplayRun
from distill.secrets import scrub


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    # Agents send whole conversations back: tool_calls, refusal, audio… are history, not task.
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class DistillOptions(BaseModel):
    """Replay flags an OpenAI client can pass in ``extra_body={"distill": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    task_id: str | None = Field(default=None, max_length=200)
    top_k: int = Field(default=8, ge=1, le=50)
    local_only: bool = False
    allow_escalation: bool = False
    no_retrieval: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's documented request fields; any other field is refused, as OpenAI does."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    n: int | None = Field(default=None, ge=1, le=1)
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    distill: DistillOptions = Field(default_factory=DistillOptions)

    def task(self) -> str | None:
        """The text of the last user message, or None when there is none."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message_text(message)
        return None

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def message_text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return "\n".join(part.text or "" for part in message.content if part.type == "text")
    return message.content or ""


class ChatAnswer:
    """One gated replay, rendered as a chat completion or as a stream of chunks."""

    def __init__(self, run: ReplayRun, model_id: str, max_tokens: int) -> None:
        self.run = run
        self.model_id = model_id
        self.id = f"chatcmpl-{run.run_id}"
        self.created = int(time.time())
        self.content = abstain_answer(run) if run.verdict == "abstained" else run.final_answer
        final = run.attempts[-1] if run.attempts else None
        # usage counts every attempt (a failed local answer before an escalation costs tokens too)
        prompt = [a.usage.prompt_tokens for a in run.attempts]
        completion = [a.usage.completion_tokens for a in run.attempts]
        self.usage = _usage(_total(prompt), _total(completion)) if run.attempts else {}
        # replay gives the escalation model twice the local budget
        budget = max_tokens * 2 if final is not None and final.role == "escalation" else max_tokens
        done = final.usage.completion_tokens if final else None
        self.finish_reason = "length" if done is not None and done >= budget else "stop"

    def extension(self) -> dict[str, Any]:
        """What an OpenAI client does not know to ask for: provenance and the gate's verdict."""
        final = self.run.attempts[-1] if self.run.attempts else None
        return {
            "run_id": self.run.run_id,
            "verdict": self.run.verdict,
            "cited_ids": self.run.cited_ids,
            "escalated": self.run.escalated,
            "model": final.model if final else None,
            "index_version": self.run.index_version,
            "hits": [hit.model_dump(mode="json") for hit in self.run.hits],
            "min_relevance": self.run.min_relevance,
            "gate": final.gate.model_dump(mode="json") if final and final.gate else None,
        }

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.content,
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage or None,
            "distill": self.extension(),
        }

    def chunks(self, *, include_usage: bool) -> Iterator[bytes]:
        """Server-sent events: role, the answer in word pieces, the finish with the extension,
        the usage when asked for, ``[DONE]``. The answer was gated before the first byte."""
        usage: dict[str, Any] = {"usage": None} if include_usage else {}
        yield self._event({"role": "assistant", "content": ""}, None, usage)
        for piece in re.findall(r"\s*\S+\s*", self.content):
            yield self._event({"content": piece}, None, usage)
        yield self._event({}, self.finish_reason, {**usage, "distill": self.extension()})
        if include_usage:
            yield _sse({**self._base(), "choices": [], "usage": self.usage or None})
        yield b"data: [DONE]\n\n"

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
        }

    def _event(self, delta: dict[str, Any], finish: str | None, extra: dict[str, Any]) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**self._base(), "choices": [choice], **extra})


def _usage(prompt: int | None, completion: int | None) -> dict[str, int]:
    if prompt is None and completion is None:
        return {}
    return {
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "total_tokens": (prompt or 0) + (completion or 0),
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + scrub(orjson.dumps(payload).decode()).encode() + b"\n\n"


def model_list(model_id: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(model_id, created)]}


def model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "distill"}


def _total(counts: list[int | None]) -> int | None:
    """The sum when every attempt reported its count, else None (unknown stays unknown)."""
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
