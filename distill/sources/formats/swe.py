"""Trajectories: ``format = "mini_swe_agent"`` (``.traj.json``) and ``"swe_agent"`` (``.traj``).

One pretty-printed JSON document per file, one record per document. The row keeps the
document's own top-level fields except the transcript (``messages`` / ``history`` /
``trajectory``) and bulky configuration (``info.config``, ``replay_config``,
``info.edited_files*``), which the derived fields below replace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from distill.schemas import Category
from distill.sources.formats.base import ReadContext, as_dict, read_document
from distill.sources.spec import Scorable, ScoringContext, Source, Verdict, text_of
from distill.sources.times import epoch_time
from distill.sources.units import Unit

A, R, H = Category.accepted, Category.rejected, Category.needs_human_review

DEFAULTS: dict[str, Any] = {
    "id_field": "instance_id",
    "time_field": "created_at",
    "task_field": "instance_id",
    "instruction_field": "instruction",
    "response_fields": ["info.submission"],
    "file_fields": ["files"],
    "repo_field": "repo",
    "verdict_map": {"true": A, "false": R},
}
_SUFFIXES = (".traj.json", ".traj", ".json")
_SWE_BENCH_ID = re.compile(r"(?P<owner>[A-Za-z0-9_.-]+?)__(?P<name>[A-Za-z0-9_.-]+)-\d+")
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)\r?$", re.MULTILINE)
_PR_DESCRIPTION = re.compile(r"<pr_description>(.*?)</pr_description>", re.DOTALL)
_ISSUE = re.compile(r"ISSUE:\n(.*?)(?:\n\s*INSTRUCTIONS:|\Z)", re.DOTALL)


def read_mini_swe_agent(path: Path, ctx: ReadContext) -> Iterator[Unit]:
    yield from read_document(path, ctx, mini_swe_agent_row)


def read_swe_agent(path: Path, ctx: ReadContext) -> Iterator[Unit]:
    yield from read_document(path, ctx, swe_agent_row)


def mini_swe_agent_row(doc: dict[str, Any], path: Path, ctx: ReadContext) -> dict[str, Any]:
    """mini-swe-agent 1.x/2.x: times are epoch numbers in ``messages[].extra``
    (``timestamp``, or ``response.created``); the task is the first user message's
    ``<pr_description>``."""
    messages = _dicts(doc.get("messages"))
    info = as_dict(doc.get("info"))
    times = [t for t in map(_message_time, messages) if t is not None]
    config = as_dict(info.get("config"))
    model = _deep(config, "model", "model_name") or _last_model(messages)
    row = _common(doc, info, path, drop={"messages"})
    row.update(
        created_at=times[-1] if times else None,
        started_at=epoch_time(times[0]) if times else None,
        instruction=_task_text(_first_user(messages)),
        model=model,
        steps=sum(1 for m in messages if m.get("role") == "assistant"),
    )
    return row


def swe_agent_row(doc: dict[str, Any], path: Path, ctx: ReadContext) -> dict[str, Any]:
    """SWE-agent 0.7-1.x: no time in the document, so the record's time is the collect's
    ``--recorded-at``; the task is the ``ISSUE:`` of the first non-demonstration user turn."""
    history = _dicts(doc.get("history"))
    info = as_dict(doc.get("info"))
    users = [
        m
        for m in history
        if m.get("role") == "user"
        and m.get("is_demo") is not True
        and not _content_text(m.get("content")).startswith("Here is a demonstration")
    ]
    row = _common(doc, info, path, drop={"history", "trajectory", "replay_config"})
    row.update(
        created_at=ctx.recorded_at or None,
        instruction=_task_text(users[0] if users else None),
        steps=len(_dicts(doc.get("trajectory"))),
    )
    return row


def _common(
    doc: dict[str, Any], info: dict[str, Any], path: Path, drop: set[str]
) -> dict[str, Any]:
    instance_id = doc.get("instance_id")
    if not isinstance(instance_id, str) or not instance_id.strip():
        instance_id = _stem(path.name)
    stats = as_dict(info.get("model_stats"))
    submission = info.get("submission")
    row = {key: value for key, value in doc.items() if key not in drop}
    row["info"] = {
        key: value
        for key, value in info.items()
        if key != "config" and not key.startswith("edited_files")
    }
    row.update(
        instance_id=instance_id,
        exit_status=info.get("exit_status"),
        files=_patch_files(submission),
        repo=_repo(instance_id),
        api_calls=stats.get("api_calls"),
        cost=stats.get("instance_cost"),
    )
    return row


class TrajectorySource(Source):
    """A verdicts file (SWE-bench reports: resolved → accepted, else rejected) decides; without
    one, an agent that did not submit or submitted no patch is rejected, and a submitted patch
    nobody evaluated needs review."""

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"exit_status"}

    def text_file_paths(self, text: str) -> list[str]:
        """Paths in the text, less a patch's ``a/``/``b/`` spellings of the files it changes."""
        prefixed = {f"{side}/{path}" for path in _patch_files(text) for side in "ab"}
        return [path for path in super().text_file_paths(text) if path not in prefixed]

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        signals = super().signals(row)
        signals["exit_status"] = row.get("exit_status")
        signals["patch"] = bool(text_of(_deep(row, "info", "submission")).strip())
        return signals

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        signals = record.signals
        if signals.get("verdict") is not None:
            return super().score(record, context)
        status = signals.get("exit_status")
        if isinstance(status, str) and not status.strip().lower().startswith("submitted"):
            return Verdict(R, f"exit_status={status}: the agent did not submit", True)
        if signals.get("patch") is False:
            return Verdict(R, "no patch submitted", True)
        return Verdict(H, "submitted, not evaluated (no verdicts file entry)", False)


def _message_time(message: dict[str, Any]) -> int | float | None:
    extra = message.get("extra")
    if not isinstance(extra, dict):
        return None
    for value in (extra.get("timestamp"), _deep(extra, "response", "created")):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def _first_user(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in messages if m.get("role") == "user"), None)


def _task_text(message: dict[str, Any] | None) -> str:
    """The issue inside a task prompt: ``<pr_description>``, ``ISSUE:``, else all of it."""
    text = _content_text(message.get("content")) if message else ""
    found = _PR_DESCRIPTION.search(text) or _ISSUE.search(text)
    if found is None:
        return text.strip()
    inner = found.group(1).strip()
    return inner.removeprefix("Consider the following PR description:").strip()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _last_model(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        model = _deep(message, "extra", "response", "model")
        if isinstance(model, str):
            return model
    return None


def _patch_files(patch: Any) -> list[str]:
    if not isinstance(patch, str):
        return []
    return list(dict.fromkeys(match.group(2) for match in _DIFF_FILE.finditer(patch)))


def _repo(instance_id: str) -> str | None:
    """SWE-bench's ``owner__name-123`` → ``owner/name``."""
    found = _SWE_BENCH_ID.fullmatch(instance_id)
    return f"{found['owner']}/{found['name']}" if found else None


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _deep(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
