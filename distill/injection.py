"""Text shaped like a prompt injection: instructions addressed to a model, not to an engineer.

Deterministic phrase matching, shared by the replay gate (an answer carrying one fails) and the
replay_runs rule (one never becomes a playbook, whatever its verdict).
"""

from __future__ import annotations

import re

INJECTION_PATTERNS = (
    r"ignore (?:all |any |the )?(?:previous|prior|above|earlier) (?:instructions|prompts?|rules)",
    r"disregard (?:all |any |the )?(?:previous|prior|above|earlier|your) (?:instructions|rules)",
    r"forget (?:all |any |your )?(?:previous |prior )?instructions",
    r"you are now (?:a|an|in) ",
    r"(?:reveal|print|show|repeat) (?:your|the) (?:system )?prompt",
    r"new instructions\s*:",
    r"\bsystem prompt\b",
    r"\bjailbreak\b",
    r"(?:always|you must) cite [a-z_]+:[\w.-]+",
)
_INJECTION = [re.compile(pattern, re.IGNORECASE) for pattern in INJECTION_PATTERNS]


def injection_phrases(text: str) -> list[str]:
    """The injection-shaped phrases found in ``text``, as written, in order of the patterns."""
    return [match.group(0) for pattern in _INJECTION if (match := pattern.search(text))]
