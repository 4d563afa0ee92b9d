"""``format = "openai_chat"``: JSONL of chat-completion calls as logging proxies save them.

One call per line: ``{"request": {"model", "messages": [...]}, "response": {"id", "created",
"choices": [{"message", "finish_reason"}]}, …}``, plus whatever the proxy adds (a
``timestamp``, ``metadata``, a ``task_id``…), which is kept. The row drops the transcript
(``request.messages``, ``response.choices``) for the derived fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from distill.schemas import Category
from distill.sources.formats.base import ReadContext, as_dict, as_list, read_lines
from distill.sources.spec import Scorable, ScoringContext, Source, Verdict, text_of
from distill.sources.units import Unit

A, R, H = Category.accepted, Category.rejected, Category.needs_human_review

DEFAULTS: dict[str, Any] = {
    "id_field": "call_id",
    "time_field": "created_at",
    "task_field": "task_id",
    "instruction_field": "instruction",
    "response_fields": ["answer"],
    "file_fields": ["files"],
    "verdict_map": {"true": A, "false": R},
}
_CUT_OFF = {"length": "the answer was cut off", "content_filter": "the answer was filtered"}


def read_openai_chat(path: Path, ctx: ReadContext) -> Iterator[Unit]:
    yield from read_lines(path, ctx, openai_chat_row)


def openai_chat_row(line: dict[str, Any]) -> dict[str, Any]:
    """The call's id (``response.id``, else the line's ``id``), time (``response.created``,
    else the line's ``timestamp``), last user message, first choice and its finish reason."""
    request = as_dict(line.get("request"))
    response = as_dict(line.get("response"))
    choices = as_list(response.get("choices"))
    choice = as_dict(choices[0]) if choices else {}
    message = as_dict(choice.get("message"))
    messages = as_list(request.get("messages"))
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    row = {key: value for key, value in line.items() if key not in ("request", "response")}
    row["request"] = {k: v for k, v in request.items() if k != "messages"}
    row["response"] = {k: v for k, v in response.items() if k != "choices"}
    error = response.get("error") if response.get("error") is not None else line.get("error")
    row.update(
        call_id=response.get("id") if response.get("id") is not None else line.get("id"),
        created_at=_first_set(response.get("created"), line.get("timestamp")),
        model=response.get("model") or request.get("model"),
        instruction=_content_text(users[-1].get("content")) if users else "",
        system=next(
            (
                _content_text(m.get("content"))
                for m in messages
                if isinstance(m, dict) and m.get("role") == "system"
            ),
            None,
        ),
        answer=_answer(message),
        finish_reason=choice.get("finish_reason"),
        error=error,
        turns=len(messages),
    )
    return row


class OpenAIChatSource(Source):
    """A verdicts file or verdict field decides; without one a failed call or an answer cut off
    (``finish_reason`` length or content_filter) is rejected, anything else needs review."""

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"finish_reason", "error"}

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        signals = super().signals(row)
        for key in ("finish_reason", "error"):
            if row.get(key) is not None:
                signals[key] = row[key]
        return signals

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        signals = record.signals
        if signals.get("verdict") is not None:
            return super().score(record, context)
        if signals.get("error") is not None:
            return Verdict(R, f"the call failed: {text_of(signals['error'])[:80]}", True)
        reason = signals.get("finish_reason")
        if isinstance(reason, str) and reason in _CUT_OFF:
            return Verdict(R, f"{_CUT_OFF[reason]} (finish_reason={reason})", True)
        return Verdict(H, "no verdict", False)


def _answer(message: dict[str, Any]) -> str:
    """The assistant's text, then one line per tool call it made."""
    parts = [_content_text(message.get("content"))]
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(f"called {function.get('name')}({text_of(function.get('arguments'))})")
    return "\n".join(part for part in parts if part).strip()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str)).strip()
    return ""


def _first_set(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
