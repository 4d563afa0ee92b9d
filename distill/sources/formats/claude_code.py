"""``format = "claude_code"``: Claude Code session transcripts, one record per session.

A transcript (``~/.claude/projects/<project>/<session>.jsonl``) holds one event per line:
``user`` and ``assistant`` messages, tool results (user lines whose content is
``tool_result`` blocks), ``queue-operation``, ``summary`` and meta lines, all keyed by ``uuid``
and grouped by ``sessionId``. The lines of one session fold into one row (see
:class:`ClaudeSession`); lines before the first ``sessionId`` (summaries) join the first session,
lines without one later join the session before them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from distill.jsonio import iter_json_objects
from distill.schemas import Category
from distill.sources.formats.base import ReadContext, fold_lines
from distill.sources.formats.claude_session import ClaudeSession
from distill.sources.paths import get_path, scalar_text
from distill.sources.spec import Scorable, ScoringContext, Source, Verdict
from distill.sources.units import Unit

A, P, R, H = (
    Category.accepted,
    Category.partially_accepted,
    Category.rejected,
    Category.needs_human_review,
)

DEFAULTS: dict[str, Any] = {
    "group_by": "sessionId",
    "id_field": "session_id",
    "time_field": "created_at",
    "task_field": None,
    "instruction_field": "instruction",
    "response_fields": ["final_text", "actions"],
    "file_fields": ["files"],
    "verdict_map": {"true": A, "false": R},
}


def read_claude_code(path: Path, ctx: ReadContext) -> Iterator[Unit]:
    """One unit per session in the file, in order of the session's first line."""
    key_path = ctx.spec.group_by or "sessionId"
    current: list[str | None] = [_first_key(path, key_path, ctx.max_unit_bytes)]

    def key_of(row: dict[str, Any]) -> str | None:
        key = scalar_text(get_path(row, key_path))
        if key is not None:
            current[0] = key
        return current[0]

    yield from fold_lines(path, ctx, key_of, ClaudeSession, f"{key_path!r} in the file")


def _first_key(path: Path, key_path: str, limit: int) -> str | None:
    """The first session id in the file (read up to the line that has one; usually line 1-3)."""
    for _, row in iter_json_objects(path, limit):
        key = scalar_text(get_path(row, key_path))
        if key is not None:
            return key
    return None


class ClaudeCodeSource(Source):
    """A session's verdict: a verdicts file or verdict field first, else what the session shows.

    In order: the session ends on an interruption → rejected; the user rejected a tool call
    after their last request → rejected; the last test command failed → rejected; it passed
    and no file changed after it → partially_accepted (never accepted without a verdict: a
    test run is the agent's own check); files changed after it → needs_human_review; no test
    run and the last tool call failed → rejected; otherwise needs_human_review.
    """

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"outcome"}

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        signals = super().signals(row)
        outcome = row.get("outcome")
        if isinstance(outcome, dict):
            signals.update((k, v) for k, v in outcome.items() if v not in (None, False))
        return signals

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        signals = record.signals
        if signals.get("verdict") is not None:
            return super().score(record, context)
        if signals.get("interrupted") is True:
            return Verdict(R, "the session ends on an interruption by the user", True)
        if signals.get("tool_rejected") is True:
            return Verdict(R, "the user rejected a tool call after the last request", True)
        command = _short(signals.get("last_test_command"))
        last_test = signals.get("last_test")
        if last_test == "failed":
            return Verdict(R, f"the last test run failed: {command}", True)
        if last_test == "passed":
            if signals.get("edited_after_test") is True:
                return Verdict(H, f"files changed after the last passing test run: {command}", True)
            return Verdict(P, f"the last test run passed: {command}", True)
        if signals.get("last_tool_error") is True:
            return Verdict(R, "no test run, and the last tool call failed", True)
        return Verdict(H, "no verdict: no test run, no failure, no interruption", False)


_SPACE = re.compile(r"\s+")


def _short(command: Any) -> str:
    text = _SPACE.sub(" ", command if isinstance(command, str) else "").strip()
    return text if len(text) <= 80 else text[:77] + "..."
