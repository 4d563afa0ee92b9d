"""eval replay: each task with and without retrieval — gate pass rate, relevant citations,
escalation rate, latency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distill.errors import ConfigError
from distill.home import Home
from distill.index import Retriever
from distill.replay import ReplayOptions, replay
from distill.replay.run import ModelFactory
from distill.schemas import ReplayRun


@dataclass(frozen=True)
class EvalTask:
    task: str
    relevant_ids: list[str]
    task_id: str | None = None


@dataclass
class ArmResult:
    name: str
    runs: list[ReplayRun] = field(default_factory=list)
    relevant: list[list[str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.runs) or 1
        latencies = [a.latency_ms for r in self.runs for a in r.attempts if a.latency_ms]
        cites = [
            bool(set(r.cited_ids) & set(rel))
            for r, rel in zip(self.runs, self.relevant, strict=True)
        ]
        found = [
            bool({h.id for h in r.hits} & set(rel))
            for r, rel in zip(self.runs, self.relevant, strict=True)
        ]
        return {
            "tasks": len(self.runs),
            "gate_pass_rate": round(sum(r.verdict == "passed" for r in self.runs) / n, 4),
            "cites_relevant_rate": round(sum(cites) / n, 4),
            "retrieved_relevant_rate": round(sum(found) / n, 4),
            "escalation_rate": round(sum(r.escalated for r in self.runs) / n, 4),
            "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        }


def load_tasks(path: Path, limit: int | None = None) -> list[EvalTask]:
    tasks = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            tasks.append(
                EvalTask(
                    task=row["task"],
                    relevant_ids=list(row.get("relevant_ids", [])),
                    task_id=row.get("task_id"),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}:{number}: expected {{task, relevant_ids}}: {err}") from err
    return tasks[:limit] if limit else tasks


def evaluate_replay(
    home: Home,
    tasks: list[EvalTask],
    *,
    retriever: Callable[[], Retriever],
    local: ModelFactory,
    escalation: ModelFactory | None = None,
    allow_escalation: bool = False,
    log: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ArmResult]:
    """Run every task twice: with retrieval, and with --no-retrieval (the baseline)."""
    arms = [ArmResult("retrieval"), ArmResult("no_retrieval")]
    opened = retriever()  # open the index and load the model once for all tasks
    model = local()
    for arm in arms:
        for number, item in enumerate(tasks, 1):
            if progress is not None:
                progress(arm.name, number, len(tasks))
            options = ReplayOptions(
                no_retrieval=arm.name == "no_retrieval",
                log=log,
                allow_escalation=allow_escalation,
                task_id=item.task_id,
            )
            arm.runs.append(
                replay(
                    home,
                    item.task,
                    options,
                    retriever=lambda: opened,
                    local=lambda: model,
                    escalation=escalation,
                )
            )
            arm.relevant.append(item.relevant_ids)
    return arms
