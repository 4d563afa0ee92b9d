"""Reads and the one write the MCP tools need: a playbook by id, a page of ids, an outcome.

``record_outcome`` appends an ``observer_reviews`` row with :func:`append_line_locked` (one whole
line under the stream's own lock), as replay appends to its log: an append to a source stream
never takes the home's writer lock, which is for commands that rewrite derived files.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from distill.clock import utc_now
from distill.errors import DistillError
from distill.home import Home
from distill.index import Retriever
from distill.index.search import HIT_COLUMNS
from distill.jsonio import append_line_locked
from distill.mcp_server.models import OutcomeResult, Playbook, PlaybookProvenance
from distill.replay.run import REPLAY_STREAM
from distill.schemas import RagSample, ReplayRun
from distill.sources import OBSERVER_STREAM

Verdict = Literal["accept", "reject"]


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def get_playbook(home: Home, retriever: Retriever, playbook_id: str) -> Playbook:
    """The published playbook ``playbook_id``, with its provenance from the RAG export when the
    export still holds it (the index keeps only the source hash)."""
    columns = [c for c in HIT_COLUMNS if c != "vector"]
    rows = (
        retriever.table.search()
        .where(f"id = {_quoted(playbook_id)}")
        .select(columns)
        .limit(1)
        .to_list()
    )
    if not rows:
        raise DistillError(
            f"no playbook {playbook_id!r} in index version {retriever.version}",
            hint="use an id that search_playbooks returned",
        )
    row = rows[0]
    provenance = _export_provenance(home.export_path("rag"), playbook_id, row["sig_hash"])
    return Playbook(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        category=row["category"],
        source=row["source"],
        task_id=row["task_id"] or None,
        file_paths=list(row["file_paths"] or []),
        validation_steps=list(row["validation_steps"] or []),
        provenance=provenance,
        index_version=retriever.version,
    )


def _export_provenance(path: Path, playbook_id: str, sig_hash: str) -> PlaybookProvenance:
    needle = orjson.dumps(playbook_id)
    for line in _lines(path):
        if needle not in line:  # a cheap test before parsing: most lines are other playbooks
            continue
        try:
            sample = RagSample.model_validate_json(line)
        except ValidationError:
            continue
        if sample.id == playbook_id and sample.provenance.sig_hash == sig_hash:
            return PlaybookProvenance(**sample.provenance.model_dump())
    return PlaybookProvenance(sig_hash=sig_hash)


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            yield from handle
    except FileNotFoundError:
        return


def playbook_ids(retriever: Retriever) -> list[tuple[str, str]]:
    """(id, title) of every published playbook, in id order (a projected scan)."""
    rows: list[dict[str, Any]] = retriever.store.rows(["id", "title"])
    return sorted((row["id"], row["title"]) for row in rows)


def record_outcome(
    home: Home,
    *,
    run_id: str | None,
    task_id: str | None,
    verdict: Verdict,
    notes: str | None = None,
) -> OutcomeResult:
    """Append an ``observer_reviews`` row judging a logged replay: by ``run_id``, or the latest
    run of ``task_id``. An ``accept`` upgrades that task's passed replay to accepted at the next
    ``distill run-all``; the row quotes the run's task and answer, so it is evidence itself."""
    if bool(run_id) == bool(task_id):
        raise DistillError(
            "give exactly one of run_id and task_id", hint="run_id is what replay returned"
        )
    run = _logged_run(home, run_id=run_id, task_id=task_id)
    if not run.task_id:
        raise DistillError(
            f"replay run {run.run_id} has no task_id, and a review counts per task",
            hint="replay again with task_id set, then record the outcome of that run",
        )
    created_at = utc_now(micro=True)
    observation_id = f"mcp-{uuid.uuid4().hex}"
    row: dict[str, Any] = {
        "observation_id": observation_id,
        "created_at": created_at,
        "task_id": run.task_id,
        "prompt": run.task,
        "response": run.final_answer,
        "verdict": verdict,
        "notes": f"{notes} (replay run {run.run_id})" if notes else f"replay run {run.run_id}",
    }
    stream = home.kb_dir / f"{OBSERVER_STREAM}.jsonl"
    append_line_locked(stream, orjson.dumps(row))
    effect = (
        "the task's passed replay becomes accepted at the next `distill run-all`"
        if verdict == "accept"
        else "the review counts as rejected evidence at the next `distill run-all`"
    )
    return OutcomeResult(
        observation_id=observation_id,
        created_at=created_at,
        task_id=run.task_id,
        run_id=run.run_id,
        verdict=verdict,
        stream=home.relative(stream),
        effect=effect,
    )


def _logged_run(home: Home, *, run_id: str | None, task_id: str | None) -> ReplayRun:
    """The run ``run_id``, or the latest run of ``task_id``, from the replay log."""
    found: ReplayRun | None = None
    for line in _lines(home.kb_dir / REPLAY_STREAM):
        key = run_id if run_id else task_id
        if not line.strip() or orjson.dumps(key) not in line:
            continue
        try:
            run = ReplayRun.model_validate_json(line)
        except ValidationError:
            continue
        if (run_id and run.run_id == run_id) or (task_id and run.task_id == task_id):
            found = run
            if run_id:
                break
    if found is None:
        what = f"run {run_id}" if run_id else f"run of task {task_id!r}"
        raise DistillError(
            f"no replay {what} in the replay log",
            hint="call replay first (without dry_run: a dry run is not logged), then record its "
            "outcome",
        )
    if found.verdict in ("abstained", "dry_run"):
        raise DistillError(
            f"replay run {found.run_id} is {found.verdict}: it has no answer to judge",
            hint="replay without dry_run (or write the answer yourself and keep it in your repo)",
        )
    return found
