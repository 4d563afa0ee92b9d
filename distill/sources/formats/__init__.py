"""Log formats a source can name: ``format = "…"`` in its ``[sources.<name>]`` table."""

from __future__ import annotations

from typing import Any

from distill.sources.formats import claude_code, jsonl, openai_chat, swe
from distill.sources.formats.base import (
    DEFAULT_MAX_UNIT_BYTES,
    Format,
    ReadContext,
    Reader,
)
from distill.sources.spec import Source

FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in [
        Format("jsonl", jsonl.read_jsonl, Source, {}, "one JSON object per line"),
        Format(
            "claude_code",
            claude_code.read_claude_code,
            claude_code.ClaudeCodeSource,
            claude_code.DEFAULTS,
            "Claude Code session transcripts, a record per session",
        ),
        Format(
            "mini_swe_agent",
            swe.read_mini_swe_agent,
            swe.TrajectorySource,
            swe.DEFAULTS,
            "mini-swe-agent trajectories (.traj.json), a record per document",
        ),
        Format(
            "swe_agent",
            swe.read_swe_agent,
            swe.TrajectorySource,
            swe.DEFAULTS,
            "SWE-agent trajectories (.traj), a record per document",
        ),
        Format(
            "openai_chat",
            openai_chat.read_openai_chat,
            openai_chat.OpenAIChatSource,
            openai_chat.DEFAULTS,
            "chat-completion request/response pairs, a record per line",
        ),
    ]
}


def format_defaults(name: str) -> dict[str, Any]:
    """The field mapping a format starts from; a ``[sources.<name>]`` table overrides it."""
    fmt = FORMATS.get(name)
    return dict(fmt.defaults) if fmt else {}


__all__ = [
    "DEFAULT_MAX_UNIT_BYTES",
    "FORMATS",
    "Format",
    "ReadContext",
    "Reader",
    "format_defaults",
]
