"""`distill eval replay --tasks FILE`: replay quality with and without retrieval, by kind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from distill import settings
from distill.cli.common import (
    HomeOpt,
    IndexDirOpt,
    JsonOpt,
    MinRelevanceOpt,
    ModelOpt,
    ModelUrlOpt,
    PromptStyleOpt,
    RepoRootOpt,
    err_console,
    handles_errors,
    index_at,
    print_json,
    resolve_home,
    table,
)
from distill.eval.replay_eval import evaluate_replay, load_tasks, replay_report
from distill.replay.config import open_model


@handles_errors
def eval_replay_command(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            help="JSONL of {task, relevant_ids, task_id?, kind?}; kind is paraphrase, hard, "
            "out_of_scope (relevant_ids empty) or any label; e.g. fixtures/sample/tasks.jsonl.",
            exists=True,
            dir_okay=False,
        ),
    ],
    home: HomeOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N tasks.")] = None,
    model_url: ModelUrlOpt = None,
    model: ModelOpt = None,
    prompt_style: PromptStyleOpt = None,
    allow_escalation: Annotated[
        bool, typer.Option("--allow-escalation", help="Let failed answers escalate.")
    ] = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Append the eval's replays to the replay log, marked as eval runs (they never "
            "become playbooks).",
        ),
    ] = False,
    min_relevance_: MinRelevanceOpt = None,
    repo_root: RepoRootOpt = None,
    index_dir: IndexDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay each task with and without retrieval and report, per kind of task and arm: gate
    passes, abstentions, answers citing a relevant id (and the share of passed answers that
    do), tasks that retrieved one, false grounding out of scope (passed), escalations, latency;
    then the relevance curve (the share of each kind that abstains at each threshold).
    """
    resolved, _ = resolve_home(home)
    items = load_tasks(tasks, limit)
    local = settings.local_model(
        resolved, os.environ, url=model_url, model=model, prompt_style=prompt_style
    )
    escalation = settings.escalation_model(resolved, os.environ)
    index = index_at(resolved, index_dir)
    threshold = settings.min_relevance(resolved, min_relevance_)
    with err_console.status("evaluating…") as status:
        arms = evaluate_replay(
            resolved,
            items,
            retriever=index.retriever,
            local=lambda: open_model(local),
            escalation=(lambda: open_model(escalation)) if escalation else None,
            allow_escalation=allow_escalation,
            log=log,
            min_relevance=threshold,
            repo_root=repo_root,
            progress=lambda arm, n, total: status.update(f"{arm}: task {n}/{total}…"),
        )
    report = replay_report(arms, threshold)
    if as_json:
        model_name = local.url or str(local.path)
        print_json({"tasks": len(items), "model": model_name, **report})
        return
    console = Console()
    console.print(table(f"replay eval on {tasks} (min relevance {threshold})", *_rates(report)))
    console.print(table("relevance curve: share abstaining", *_curve(report)))


def _rates(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    columns = [
        "arm",
        "kind",
        "tasks",
        "passed",
        "abstained",
        "cites relevant",
        "passed citing relevant",
        "retrieved relevant",
        "false grounded",
        "escalated",
        "p50 ms",
    ]
    rows = []
    for arm, kinds in report["arms"].items():
        for kind, r in kinds.items():
            rows.append(
                [
                    arm,
                    kind,
                    str(r["tasks"]),
                    _pct(r["gate_pass_rate"]),
                    _pct(r["abstained_rate"]),
                    _pct(r["cites_relevant_rate"]),
                    _pct(r["passed_cite_relevant_rate"]),
                    _pct(r["retrieved_relevant_rate"]),
                    _pct(r.get("false_grounded_rate")),
                    _pct(r["escalation_rate"]),
                    str(r["latency_p50_ms"]),
                ]
            )
    return columns, rows


def _curve(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    points = report["relevance_curve"]
    kinds = [k for k in points[0] if k != "threshold"] if points else []
    rows = [[f"{p['threshold']:.2f}", *(_pct(p[k]) for k in kinds)] for p in points]
    return ["threshold", *kinds], rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
