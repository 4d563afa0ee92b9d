"""The validation gate: deterministic code, never a model. Each check passes or says why not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from distill.repos import inside
from distill.schemas import Bundle, GateCheck, GateReport
from distill.text import extract_file_paths

# Phrases that mark an answer as a non-answer. Matched case-insensitively as substrings.
HEDGING_PHRASES = (
    "as an ai",
    "i cannot",
    "i can't",
    "i'm not sure",
    "i am not sure",
    "i don't know",
    "i do not know",
    "i'm unable",
    "i am unable",
    "it is unclear",
    "hard to say",
    "cannot be determined",
    "i would guess",
)
_HEDGES = {phrase: re.compile(rf"\b{re.escape(phrase)}\b") for phrase in HEDGING_PHRASES}
_WORD = re.compile(r"[a-z0-9_]{4,}")
_STOP = frozenset(
    "that this with from into when then than they them have been were will "
    "should must each also only does what your their there which".split()
)


@dataclass(frozen=True)
class GatePolicy:
    min_chars: int = 20
    max_chars: int = 6000
    step_coverage: float = 0.3
    repo_root: Path | None = None


def run_gate(
    answer: str, bundle: Bundle, retrieved_ids: list[str], policy: GatePolicy | None = None
) -> GateReport:
    """Check ``answer`` against the bundle it was grounded on."""
    policy = policy or GatePolicy()
    text = answer.strip()
    lowered = text.lower()
    checks = [
        GateCheck(name="non_empty", passed=bool(text), detail=f"{len(text)} characters"),
        GateCheck(
            name="length",
            passed=policy.min_chars <= len(text) <= policy.max_chars,
            detail=f"{len(text)} chars, bounds {policy.min_chars}..{policy.max_chars}",
        ),
    ]
    hedges = [phrase for phrase in HEDGING_PHRASES if _HEDGES[phrase].search(lowered)]
    checks.append(
        GateCheck(
            name="no_hedging",
            passed=not hedges,
            detail=f"found {hedges}" if hedges else "none found",
        )
    )
    checks.append(_coverage(lowered, bundle, policy.step_coverage))
    cited = cited_ids(text, retrieved_ids)
    if retrieved_ids:
        checks.append(
            GateCheck(
                name="cites_retrieved_id",
                passed=bool(cited),
                detail=f"cites {cited}" if cited else "cites no retrieved id",
            )
        )
    else:
        checks.append(
            GateCheck(
                name="cites_retrieved_id",
                passed=True,
                detail="no retrieval (--no-retrieval): nothing to cite",
            )
        )
    checks.append(_paths(text, bundle, policy.repo_root))
    return GateReport(passed=all(check.passed for check in checks), checks=checks)


def cited_ids(answer: str, retrieved_ids: list[str]) -> list[str]:
    """Retrieved ids that appear in the answer as whole ids, in retrieval order.

    ``audits:AUD-12`` is not a citation of ``audits:AUD-1``.
    """
    return [
        record_id
        for record_id in retrieved_ids
        if re.search(rf"(?<![\w:.-]){re.escape(record_id)}(?![\w-])", answer)
    ]


def _coverage(lowered: str, bundle: Bundle, threshold: float) -> GateCheck:
    steps = bundle.validation_steps
    if not steps:
        return GateCheck(
            name="validation_step_coverage", passed=True, detail="no validation steps in the bundle"
        )
    covered = 0
    for step in steps:
        words = {w for w in _WORD.findall(step.step.lower()) if w not in _STOP}
        if words and sum(w in lowered for w in words) / len(words) >= 0.5:
            covered += 1
    share = covered / len(steps)
    return GateCheck(
        name="validation_step_coverage",
        passed=share >= threshold,
        detail=f"{covered}/{len(steps)} steps covered ({share:.0%}, needs {threshold:.0%})",
    )


def _paths(text: str, bundle: Bundle, repo_root: Path | None) -> GateCheck:
    known = set(extract_file_paths(bundle.prompt))
    for message in bundle.messages:
        known.update(extract_file_paths(message.content))
    root = repo_root.resolve() if repo_root is not None else None
    # paths come normalised ("./a.py" is "a.py"); one climbing out of the root is not in it
    unknown = [
        p
        for p in extract_file_paths(text)
        if p not in known and not (root is not None and inside(root, p))
    ]
    return GateCheck(
        name="no_unknown_file_paths",
        passed=not unknown,
        detail=f"unknown: {unknown[:5]}" if unknown else "every path is grounded",
    )
