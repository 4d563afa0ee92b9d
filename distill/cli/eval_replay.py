"""`distill eval replay --tasks FILE`: replay quality with and without retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distill.cli.common import (
    HomeOpt,
    JsonOpt,
    ModelOpt,
    ModelUrlOpt,
    err_console,
    handles_errors,
    print_json,
    resolve_home,
    table,
)
from distill.cli.index import IndexDirOpt
from distill.eval.replay_eval import evaluate_replay, load_tasks
from distill.index import PlaybookStore, Retriever
from distill.index.store import resolve_index_uri
from distill.replay.config import escalation_settings, local_settings, open_model


@handles_errors
def eval_replay_command(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            help="JSONL of {task, relevant_ids}; e.g. fixtures/sample/tasks.jsonl.",
            exists=True,
            dir_okay=False,
        ),
    ],
    home: HomeOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N tasks.")] = None,
    model_url: ModelUrlOpt = None,
    model: ModelOpt = None,
    allow_escalation: Annotated[
        bool, typer.Option("--allow-escalation", help="Let failed answers escalate.")
    ] = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Append the eval's replays to the replay log (off: eval runs are not evidence).",
        ),
    ] = False,
    index_dir: IndexDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay each task with and without retrieval: gate passes, citations, escalations, latency."""
    resolved, _ = resolve_home(home)
    items = load_tasks(tasks, limit)
    settings = local_settings(resolved, url=model_url, model=model)
    escalation = escalation_settings(resolved)
    uri = resolve_index_uri(index_dir, resolved.index_dir)
    with err_console.status("evaluating…") as status:
        arms = evaluate_replay(
            resolved,
            items,
            retriever=lambda: Retriever(PlaybookStore(uri)),
            local=lambda: open_model(settings),
            escalation=(lambda: open_model(escalation)) if escalation else None,
            allow_escalation=allow_escalation,
            log=log,
            progress=lambda arm, n, total: status.update(f"{arm}: task {n}/{total}…"),
        )
    results = {arm.name: arm.summary() for arm in arms}
    if as_json:
        print_json(
            {"tasks": len(items), "model": settings.url or str(settings.path), "arms": results}
        )
        return
    columns = [
        "arm",
        "tasks",
        "gate pass",
        "cites relevant",
        "retrieved relevant",
        "escalated",
        "p50 ms",
        "p95 ms",
    ]
    rows = [
        [
            name,
            str(r["tasks"]),
            f"{r['gate_pass_rate']:.0%}",
            f"{r['cites_relevant_rate']:.0%}",
            f"{r['retrieved_relevant_rate']:.0%}",
            f"{r['escalation_rate']:.0%}",
            str(r["latency_p50_ms"]),
            str(r["latency_p95_ms"]),
        ]
        for name, r in results.items()
    ]
    Console().print(table(f"replay eval on {tasks}", columns, rows))
