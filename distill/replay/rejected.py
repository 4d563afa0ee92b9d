"""The approaches the team rejected for a task: the rejected rows of ``data/scored-runs``.

They never enter a bundle; the gate compares an answer against them (``avoids_rejected``). A
rejected run is the task's when its task id is one of the tasks asked about, or when its
instruction holds nearly every content term of the task's text (:data:`TASK_MATCH`): the team
attempted this very task, and the attempt was rejected (``relevant_source`` reads that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from distill.home import Home
from distill.index.relevance import content_terms
from distill.jsonio import iter_raw_lines

# Not attempts at the task: a failed replay is the gate's judgement, not the team's, and a
# distilled fact inherits its task's most conservative verdict while stating something true.
NOT_ATTEMPTS = frozenset({"replay_runs", "distilled_facts"})
MAX_LINE_BYTES = 1 << 24


TASK_MATCH = 0.9
"""Share of a task's content terms a rejected run's instruction must hold to be an attempt at
that very task (a near-verbatim statement of it; whole trajectories are not compared, since a
long log holds a short task's few words by chance)."""
MIN_TASK_TERMS = 4
"""A task text with fewer content terms says too little to be matched to a run by its words."""
_PREFILTER_STEMS = 3  # a line must hold one of the task's longest stems to be parsed


@dataclass(frozen=True)
class RejectedRun:
    id: str
    task_id: str
    text: str
    covers: float | None = None  # its instruction states the task: the share of its terms held


def rejected_runs(
    home: Home, task_ids: Iterable[str], task_terms: frozenset[str] = frozenset()
) -> list[RejectedRun]:
    """Every rejected attempt at one of ``task_ids``, and (with the task's content terms, at
    least :data:`MIN_TASK_TERMS`) every rejected run whose instruction holds
    :data:`TASK_MATCH` of them; in file then line order."""
    wanted = {task_id for task_id in task_ids if task_id}
    by_text = len(task_terms) >= MIN_TASK_TERMS
    if not (wanted or by_text) or not home.scored_dir.is_dir():
        return []
    needles = [orjson.dumps(task_id) for task_id in sorted(wanted)]
    # a stem is a prefix of the words it comes from, but for "-ies" → "-y": a line that states
    # the task holds one of its longest stems, less a final "y", as written, Capitalised or in
    # CAPITALS (three searches of the raw bytes cost less than lower-casing every line)
    longest = sorted(task_terms, key=lambda term: (-len(term), term))[:_PREFILTER_STEMS]
    bare = [term.removesuffix("y") for term in longest]
    stems = sorted({form.encode() for s in bare for form in (s, s.capitalize(), s.upper())})
    found = []
    for path in sorted(home.scored_dir.glob("*.jsonl")):
        if path.stem in NOT_ATTEMPTS:
            continue
        for raw in iter_raw_lines(path, MAX_LINE_BYTES, digest=False):  # no hash: never read
            data = raw.data
            # cheap byte tests first: most lines are of other tasks or not rejected
            if not data or b'"rejected"' not in data:
                continue
            of_task = any(n in data for n in needles)
            if not of_task and not (by_text and any(stem in data for stem in stems)):
                continue
            row = _row(data)
            if not row or row.get("category") != "rejected":
                continue
            task_id = str(row.get("task_id"))
            covers = share_of_task(task_terms, row.get("instruction")) if by_text else 0.0
            states_task = covers >= TASK_MATCH
            if task_id in wanted or states_task:
                run = RejectedRun(
                    str(row.get("id")), task_id, _text(row), covers if states_task else None
                )
                found.append(run)
    return found


def share_of_task(task_terms: frozenset[str], text: object) -> float:
    """The share of ``task_terms`` (a task's content terms) that ``text`` holds."""
    if not isinstance(text, str) or not task_terms:
        return 0.0
    return len(task_terms & set(content_terms(text))) / len(task_terms)


def _row(data: bytes) -> dict[str, object] | None:
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _text(row: dict[str, object]) -> str:
    response = row.get("response")
    return response if isinstance(response, str) else ""
