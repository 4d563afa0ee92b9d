"""The approaches the team rejected for a task: the rejected rows of ``data/scored-runs``.

They never enter a bundle; the gate compares an answer against them (``avoids_rejected``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from distill.home import Home
from distill.jsonio import iter_raw_lines

# Not attempts at the task: a failed replay is the gate's judgement, not the team's, and a
# distilled fact inherits its task's most conservative verdict while stating something true.
NOT_ATTEMPTS = frozenset({"replay_runs", "distilled_facts"})
MAX_LINE_BYTES = 1 << 24


@dataclass(frozen=True)
class RejectedRun:
    id: str
    task_id: str
    text: str


def rejected_runs(home: Home, task_ids: Iterable[str]) -> list[RejectedRun]:
    """Every rejected attempt at one of ``task_ids``, in file then line order."""
    wanted = {task_id for task_id in task_ids if task_id}
    if not wanted or not home.scored_dir.is_dir():
        return []
    needles = [orjson.dumps(task_id) for task_id in sorted(wanted)]
    found = []
    for path in sorted(home.scored_dir.glob("*.jsonl")):
        if path.stem in NOT_ATTEMPTS:
            continue
        for raw in iter_raw_lines(path, MAX_LINE_BYTES):
            data = raw.data
            # cheap byte tests first: most lines are of other tasks or not rejected
            if not data or b'"rejected"' not in data or not any(n in data for n in needles):
                continue
            row = _row(data)
            task_id = row.get("task_id") if row else None
            if row and row.get("category") == "rejected" and str(task_id) in wanted:
                found.append(RejectedRun(str(row.get("id")), str(task_id), _text(row)))
    return found


def _row(data: bytes) -> dict[str, object] | None:
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _text(row: dict[str, object]) -> str:
    response = row.get("response")
    return response if isinstance(response, str) else ""
