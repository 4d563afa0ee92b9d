"""The replay side of the sample: the indexed sample corpus, hits made to order, the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from distill.home import Home
from distill.index import PlaybookStore, Retriever, SearchHit
from distill.replay import build_bundle
from distill.schemas import Bundle

# the environment variables that would point replay at a real model or another index
MODEL_ENV = (
    "DISTILL_MODEL_URL",
    "DISTILL_MODEL",
    "DISTILL_API_KEY",
    "DISTILL_ESCALATION_URL",
    "DISTILL_ESCALATION_MODEL",
    "DISTILL_ESCALATION_API_KEY",
    "DISTILL_INDEX_URI",
)


@dataclass(frozen=True)
class SampleIndex:
    """The sample corpus's index (hashing embedder): where it is, and what it gives for TASK."""

    uri: str
    hits: list[SearchHit]  # hybrid top-8 for TASK
    version: int

    def retriever(self) -> Callable[[], Retriever]:
        return lambda: Retriever(PlaybookStore(self.uri))


def log_lines(home: Home) -> list[bytes]:
    """The lines of ``home``'s replay log (none when there is no log)."""
    path = home.kb_dir / "replay_runs.jsonl"
    return path.read_bytes().splitlines() if path.exists() else []


def make_hit(
    record_id: str,
    category: str = "accepted",
    *,
    steps: Sequence[str] = (),
    body: str = "Round each line in src/billing/invoice.py before summing.",
) -> SearchHit:
    return SearchHit(
        id=record_id,
        score=0.5,
        title=f"playbook {record_id}",
        text=f"Task of {record_id}\n\n{body}",
        category=category,
        source=record_id.split(":")[0],
        task_id=None,
        file_paths=[],
        validation_steps=list(steps),
        sig_hash="0" * 64,
    )


def small_bundle() -> Bundle:
    """A one-exemplar bundle, for the model clients."""
    hit = SearchHit(
        id="audits:AUD-1",
        score=0.9,
        title="Round invoice totals",
        text="Round invoice totals per line\n\nRound each line in src/billing/invoice.py.",
        category="accepted",
        source="audits",
        task_id="T-1",
        file_paths=["src/billing/invoice.py"],
        validation_steps=["verify the invoice total matches the ledger"],
        sig_hash="0" * 64,
    )
    return build_bundle("Fix invoice rounding", [hit])
