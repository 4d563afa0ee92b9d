"""The relevance threshold, measured: for each candidate threshold, the share of tasks of each
kind whose best retrieved playbook falls below it (they would abstain).

A good threshold abstains on nearly every ``out_of_scope`` task and on almost no other. The
curve comes from retrieval alone, so ``distill eval retrieval --tasks`` draws it without a
model, and ``distill eval replay`` beside the answers it judges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.schemas import ReplayRun

if TYPE_CHECKING:
    from distill.eval.replay_eval import EvalTask
    from distill.index import Retriever

OUT_OF_SCOPE = "out_of_scope"
CURVE = tuple(round(0.2 + 0.02 * step, 2) for step in range(16))  # 0.20 … 0.50


def top_relevance(run: ReplayRun) -> float | None:
    """The best relevance among a run's hits: the one the threshold is compared with."""
    values = [h.relevance for h in run.hits if h.relevance is not None]
    return max(values) if values else None


def relevance_curve(
    tops: Sequence[tuple[str, float | None]], thresholds: Sequence[float] = CURVE
) -> list[dict[str, Any]]:
    """Per threshold, the share of each kind's tasks that would abstain (best relevance below)."""
    kinds = sorted({kind for kind, _ in tops})
    curve = []
    for threshold in thresholds:
        point: dict[str, Any] = {"threshold": threshold}
        for kind in kinds:
            values = [value or 0.0 for k, value in tops if k == kind]
            point[kind] = round(sum(v < threshold for v in values) / len(values), 4)
        curve.append(point)
    return curve


@dataclass(frozen=True)
class TaskRetrieval:
    task_id: str | None
    kind: str
    retrieved_ids: list[str]
    relevance: float | None
    found: bool  # a relevant id among the hits


def evaluate_task_retrieval(
    retriever: Retriever,
    tasks: Sequence[EvalTask],
    *,
    top_k: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskRetrieval]:
    """Each task's hybrid top-k: whether a relevant id is there, and the best relevance."""
    results = []
    for number, task in enumerate(tasks, 1):
        hits = retriever.search(task.task, mode="hybrid", top_k=top_k)
        values = [h.relevance for h in hits if h.relevance is not None]
        results.append(
            TaskRetrieval(
                task.task_id,
                task.kind,
                [h.id for h in hits],
                max(values) if values else None,
                bool({h.id for h in hits} & set(task.relevant_ids)),
            )
        )
        if progress is not None:
            progress(number, len(tasks))
    return results


def task_retrieval_report(results: Sequence[TaskRetrieval], min_relevance: float) -> dict[str, Any]:
    """Per kind: tasks, relevant id retrieved, abstained at ``min_relevance``; and the curve."""
    kinds: dict[str, list[TaskRetrieval]] = {}
    for result in results:
        kinds.setdefault(result.kind, []).append(result)
    by_kind = {
        kind: {
            "tasks": len(items),
            "retrieved_relevant_rate": round(sum(r.found for r in items) / len(items), 4),
            "abstained_rate": round(
                sum((r.relevance or 0.0) < min_relevance for r in items) / len(items), 4
            ),
        }
        for kind, items in sorted(kinds.items())
    }
    return {
        "min_relevance": min_relevance,
        "kinds": by_kind,
        "relevance_curve": relevance_curve([(r.kind, r.relevance) for r in results]),
        "tasks": [r.__dict__ for r in results],
    }
