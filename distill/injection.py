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

# A word each pattern cannot match without (lower case). Case-insensitively, re matches an ASCII
# letter with itself in either case and with four other letters only (İ ı ſ and the Kelvin
# sign): folded to their ASCII letter first, then lower-cased, a text holding a match holds
# its word. Most texts hold none, and a few substring tests are far cheaper than nine searches.
_NEEDED = "ignore disregard forget prompt jailbreak".split() + [
    "you are now",
    "new instructions",
    " cite ",
]
_OTHER_CASES = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
_FOLD = str.maketrans(_OTHER_CASES)


def injection_phrases(text: str) -> list[str]:
    """The injection-shaped phrases found in ``text``, as written, in order of the patterns."""
    if any(other in text for other in _OTHER_CASES):
        text_folded = text.translate(_FOLD).lower()
    else:
        text_folded = text.lower()
    if not any(word in text_folded for word in _NEEDED):
        return []
    return [match.group(0) for pattern in _INJECTION if (match := pattern.search(text))]
