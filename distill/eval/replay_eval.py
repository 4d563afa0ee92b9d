"""eval replay: each task with and without retrieval — by kind of task: gate passes, abstentions,
relevant citations and retrievals, false grounding out of scope, escalations, latency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import ConfigError
from distill.eval.abstain import OUT_OF_SCOPE, relevance_curve, top_relevance
from distill.home import Home
from distill.index import PlaybookSearch
from distill.index.relevance import DEFAULT_MIN_RELEVANCE
from distill.jsonio import iter_json_objects, refuse_bad_lines
from distill.replay import ReplayOptions, replay
from distill.replay.run import ModelFactory
from distill.schemas import ReplayRun

ARMS = ("retrieval", "no_retrieval")


@dataclass(frozen=True)
class EvalTask:
    task: str
    relevant_ids: list[str]
    task_id: str | None = None
    kind: str = "in_scope"  # paraphrase, hard, out_of_scope, or any label


@dataclass
class ArmResult:
    name: str
    runs: list[ReplayRun] = field(default_factory=list)
    tasks: list[EvalTask] = field(default_factory=list)

    def summary(self, kind: str | None = None) -> dict[str, Any]:
        """The arm's rates over the tasks of ``kind`` (every task when None)."""
        pairs = [
            (r, t) for r, t in zip(self.runs, self.tasks, strict=True) if kind in (None, t.kind)
        ]
        n = len(pairs) or 1
        passed = [(r, t) for r, t in pairs if r.verdict == "passed"]
        latencies = [a.latency_ms for r, _ in pairs for a in r.attempts if a.latency_ms]
        out: dict[str, Any] = {
            "tasks": len(pairs),
            "gate_pass_rate": _rate(len(passed), n),
            "abstained_rate": _rate(sum(r.verdict == "abstained" for r, _ in pairs), n),
            "cites_relevant_rate": _rate(sum(_cites(r, t) for r, t in pairs), n),
            "passed_cite_relevant_rate": (
                _rate(sum(_cites(r, t) for r, t in passed), len(passed)) if passed else None
            ),
            "retrieved_relevant_rate": _rate(sum(_found(r, t) for r, t in pairs), n),
            "escalation_rate": _rate(sum(r.escalated for r, _ in pairs), n),
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
        }
        if kind == OUT_OF_SCOPE:
            out["false_grounded_rate"] = out["gate_pass_rate"]  # passed where nothing applies
        return out

    def by_kind(self) -> dict[str, dict[str, Any]]:
        kinds = sorted({t.kind for t in self.tasks})
        return {"all": self.summary(), **{kind: self.summary(kind) for kind in kinds}}

    def rows(self) -> list[dict[str, Any]]:
        """One line per task: what it was, what came back."""
        return [
            {
                "task_id": t.task_id,
                "kind": t.kind,
                "arm": self.name,
                "verdict": r.verdict,
                "cited_ids": r.cited_ids,
                "retrieved_ids": [h.id for h in r.hits],
                "relevance": top_relevance(r),
                "relevant_cited": _cites(r, t),
                "reuse_of": r.reuse_of,
                "failed_checks": _failed_checks(r),
            }
            for r, t in zip(self.runs, self.tasks, strict=True)
        ]


def _rate(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def _percentile(values: list[float], q: int) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _cites(run: ReplayRun, task: EvalTask) -> bool:
    return bool(set(run.cited_ids) & set(task.relevant_ids))


def _found(run: ReplayRun, task: EvalTask) -> bool:
    return bool({h.id for h in run.hits} & set(task.relevant_ids))


def _failed_checks(run: ReplayRun) -> list[str]:
    final = run.attempts[-1] if run.attempts else None
    gate = final.gate if final else None
    return [c.name for c in gate.checks if not c.passed] if gate else []


def load_tasks(path: Path, limit: int | None = None) -> list[EvalTask]:
    """``{task, relevant_ids, task_id?, kind?}`` per line; without a kind, a task with no
    relevant id is out_of_scope and any other in_scope."""
    tasks = []
    bad = refuse_bad_lines(path, hint='one {"task": ..., "relevant_ids": [...]} object a line')
    for raw, row in iter_json_objects(path, on_bad=bad):
        try:
            relevant = [str(i) for i in row.get("relevant_ids", [])]
            kind = row.get("kind") or (OUT_OF_SCOPE if not relevant else "in_scope")
            tasks.append(EvalTask(str(row["task"]), relevant, row.get("task_id"), str(kind)))
        except (KeyError, TypeError) as err:
            raise ConfigError(
                f"{path}:{raw.line_no}: expected {{task, relevant_ids}}: {err}"
            ) from err
    return tasks[:limit] if limit else tasks


def evaluate_replay(
    home: Home,
    tasks: list[EvalTask],
    *,
    retriever: Callable[[], PlaybookSearch],
    local: ModelFactory,
    escalation: ModelFactory | None = None,
    allow_escalation: bool = False,
    log: bool = False,
    min_relevance: float = DEFAULT_MIN_RELEVANCE,
    repo_root: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ArmResult]:
    """Run every task twice: with retrieval, and with --no-retrieval (the baseline). The runs
    are marked as eval runs, so even logged (``log``) they never become playbooks."""
    arms = [ArmResult(name) for name in ARMS]
    opened = retriever()  # open the index once for all tasks; the model only when one is needed
    models: list[Any] = []

    def model() -> Any:
        if not models:
            models.append(local())
        return models[0]

    for arm in arms:
        for number, item in enumerate(tasks, 1):
            if progress is not None:
                progress(arm.name, number, len(tasks))
            options = ReplayOptions(
                no_retrieval=arm.name == "no_retrieval",
                log=log,
                allow_escalation=allow_escalation,
                task_id=item.task_id,
                min_relevance=min_relevance,
                repo_root=repo_root,
                eval_run=True,
            )
            run = replay(
                home,
                item.task,
                options,
                retriever=lambda: opened,
                local=model,
                escalation=escalation,
            )
            arm.runs.append(run)
            arm.tasks.append(item)
    return arms


def replay_report(arms: list[ArmResult], min_relevance: float) -> dict[str, Any]:
    """The ``--json`` report: rates per arm and kind, the relevance curve, one row per run."""
    retrieval = next(arm for arm in arms if arm.name == "retrieval")
    tops = [
        (t.kind, top_relevance(r)) for r, t in zip(retrieval.runs, retrieval.tasks, strict=True)
    ]
    return {
        "min_relevance": min_relevance,
        "arms": {arm.name: arm.by_kind() for arm in arms},
        "relevance_curve": relevance_curve(tops),
        "runs": [row for arm in arms for row in arm.rows()],
    }
