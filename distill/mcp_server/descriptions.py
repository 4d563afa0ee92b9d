"""What the MCP server tells a model: when to call each tool and what comes back."""

from __future__ import annotations

from mcp.server.mcpserver import UserMessage

INSTRUCTIONS = (
    "distill holds this team's accepted playbooks: tasks their agents finished, with the answer "
    "and how it was verified. Before you plan a change, call search_playbooks with the task; "
    "read a hit in full with get_playbook. replay grounds a small local model in the best "
    "playbooks and gates its answer; replay with dry_run=true returns the grounding bundle for "
    "you to answer from yourself. When you have verified a replayed answer (tests green), call "
    "record_outcome with its run_id so it becomes accepted evidence."
)

SEARCH = (
    "Search the team's accepted playbooks (past tasks, their accepted answers, how they were "
    "verified). Call it first for any coding or ops task, with the task as the query. Costs "
    "~10-50 ms, no model call. Returns up to top_k hits, best first: id, rank, score (per-query, "
    "the best hit is ~1 even when nothing fits), relevance (absolute 0..1: below ~0.35 the "
    "playbook is probably not about your task), category (accepted, or partially_accepted: "
    "treat as a warning), source, task_id, title, the text cut to 1,500 characters (truncated "
    "says so) and provenance. mode: hybrid (default), vector, or fts (exact words)."
)

GET = (
    "Fetch one playbook in full by the id search_playbooks returned: its whole text, every "
    "validation step (how the work was verified: run these too), the files it touched and its "
    "provenance (stream, source file, line, hash). Costs a few ms, no model call."
)

REPLAY = (
    "Answer a task with the team's local model grounded in the most relevant playbooks, then "
    "check the answer with the validation gate; logged like `distill replay` (a dry run is "
    "not logged). Returns answer, "
    "verdict (passed, failed, abstained: no playbook is relevant so no model was asked, or "
    "dry_run), cited_ids, the gate report and run_id. dry_run=true costs ~50 ms and no model "
    "call: it returns the grounding bundle (prompt, exemplars, warnings, validation steps) so "
    "you can write the answer yourself. Without dry_run it waits its turn for the one local "
    "model (seconds to a minute). Pass task_id to let record_outcome accept it later."
)

RECORD = (
    "Record that you verified (accept) or refuted (reject) a replayed answer, e.g. after its "
    "tests went green. Give run_id (from replay) or task_id (its latest replay). Appends one "
    "observer_reviews row; at the next `distill run-all` an accept turns that task's passed "
    "replay into an accepted playbook. Costs a few ms. Only record what you actually checked."
)


def ground_task(task: str) -> list[UserMessage]:
    """Ground this task in the team's playbooks before working on it."""
    return [
        UserMessage(
            "Before you start, ground this task in the team's playbooks.\n\n"
            f"Task: {task}\n\n"
            "1. Call search_playbooks with the task; read the relevant hits (relevance ≥ 0.35) "
            "in full with get_playbook.\n"
            "2. Follow what the accepted playbooks did; treat partially_accepted ones as "
            "warnings. Cite the ids you rely on as [id].\n"
            "3. Run every validation step the playbooks list.\n"
            "4. If you used replay and verified its answer, call record_outcome with its run_id."
        )
    ]
