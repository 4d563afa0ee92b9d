"""Export rows made to order, for tests of the re-read wall and the line limits."""

from __future__ import annotations

from typing import Any

from .paths import RECORDED_AT


def sft_sample(line: int, task_id: str | None = None) -> dict[str, Any]:
    """A valid sft_sample.v1 row of ``observer_reviews:O-<line>`` (its source line ``line``)."""
    record_id = f"observer_reviews:O-{line}"
    return {
        "schema": "sft_sample.v1",
        "id": record_id,
        "prompt": [{"role": "user", "content": "Fix it"}],
        "completion": [{"role": "assistant", "content": "Done."}],
        "quality_score": "accepted",
        "task_id": task_id,
        "provenance": {
            "stream": "observer_reviews",
            "source_file": "data/_kb/observer_reviews.jsonl",
            "line": line,
            "sig_hash": "0" * 64,
            "source_run_id": record_id,
            "recorded_at": RECORDED_AT,
        },
    }
