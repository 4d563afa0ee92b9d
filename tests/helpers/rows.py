"""Source rows made to order: a valid base row per built-in stream, with fields overridden or
dropped, and what the stream's rules make of it."""

from __future__ import annotations

from typing import Any

from distill.schemas import EvidenceRecord
from distill.sources import BUILTIN_SOURCES, ScoringContext, Verdict
from distill.sources.rows import evidence_from_row

from .paths import RECORDED_AT

T0 = "2025-03-01T10:00:00Z"
DROP = object()  # an override value that removes the field from the base row

BASE_ROWS: dict[str, dict[str, Any]] = {
    "scrum_reviews": {
        "review_id": "SR-1",
        "reviewed_at": T0,
        "task_id": "T-1",
        "file": "src/billing/invoice.py",
        "prompt": "Review the invoice rounding change",
        "review": "Rounding now uses banker's rounding.",
    },
    "audits": {
        "audit_id": "AU-1",
        "created_at": T0,
        "task_id": "T-1",
        "phase": "pre-release",
        "topic": "Token expiry audit",
        "finding": "Tokens expire after 15 minutes.",
        "evidence": "see src/auth/tokens.py",
        "files": ["src/auth/tokens.py"],
    },
    "auto_apply": {
        "apply_id": "AP-1",
        "applied_at": T0,
        "task_id": "T-1",
        "file": "src/app.py",
        "instruction": "Add a retry to the webhook client",
        "patch": "--- a/src/app.py\n+++ b/src/app.py\n+retry(3)",
    },
    "contract_analyses": {
        "analysis_id": "CA-1",
        "created_at": T0,
        "task_id": "T-1",
        "contract": "PaymentsAPI",
        "question": "Is the refund endpoint idempotent?",
        "analysis": "Yes: the refund id is the idempotency key.",
    },
    "observer_reviews": {
        "observation_id": "OB-1",
        "created_at": T0,
        "task_id": "T-1",
        "file": "src/app.py",
        "prompt": "Explain the retry policy",
        "response": "Three retries with capped exponential backoff.",
        "notes": "clear",
    },
    "distilled_facts": {
        "fact_id": "DF-1",
        "created_at": T0,
        "task_id": "T-1",
        "fact": "Refund ids are idempotency keys.",
        "origin": "postmortem",
    },
    "outcomes": {
        "outcome_id": "OU-1",
        "created_at": T0,
        "task_id": "T-1",
        "summary": "The migration shipped without downtime.",
    },
    "mode_experiments": {
        "experiment_id": "ME-1",
        "created_at": T0,
        "task_id": "T-1",
        "mode": "grounded",
        "prompt": "How do refunds work?",
        "output": "Refunds reuse the charge id.",
    },
    "replay_runs": {
        "run_id": "RUN-1",
        "created_at": T0,
        "task_id": "T-1",
        "task": "How should I add a retry?",
        "final_answer": "Wrap the call in retry(3).",
        "escalated": False,
    },
}


def make_row(stream: str, **overrides: Any) -> dict[str, Any]:
    """The base row of ``stream`` with ``overrides`` (``DROP`` removes a field)."""
    row = dict(BASE_ROWS[stream])
    for key, value in overrides.items():
        if value is DROP:
            row.pop(key, None)
        else:
            row[key] = value
    return row


def to_evidence(stream: str, row: dict[str, Any]) -> EvidenceRecord:
    outcome = evidence_from_row(
        BUILTIN_SOURCES[stream],
        row,
        source_file=f"data/_kb/{stream}.jsonl",
        line=1,
        recorded_at=RECORDED_AT,
    )
    assert outcome.evidence is not None, outcome
    return outcome.evidence


def score_row(stream: str, row: dict[str, Any], context: ScoringContext | None = None) -> Verdict:
    return BUILTIN_SOURCES[stream].score(to_evidence(stream, row), context or ScoringContext())
