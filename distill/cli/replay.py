"""`distill replay --task "..."`: the command agents call."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape

from distill import settings
from distill.cli.common import (
    DeadlineOpt,
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
)
from distill.errors import ConfigError, DistillError
from distill.replay import ReplayOptions, replay
from distill.replay.config import open_model
from distill.replay.remote import replay_remote
from distill.replay.run import abstain_answer, scrubbed_run
from distill.schemas import ReplayRequest, ReplayRun

EXIT_GATE_FAILED = 2
EXIT_ABSTAINED = 3
SERVER_SIDE = {  # the server's settings, never a request's: parameter name -> flag
    "home": "--home",
    "model": "--model",
    "model_url": "--model-url",
    "prompt_style": "--prompt-style",
    "repo_root": "--repo-root",
    "index_dir": "--index-dir",
    "deadline": "--deadline",
    "min_relevance_": "--min-relevance",
}


@handles_errors
def replay_command(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", help="What the agent needs done.")],
    home: HomeOpt = None,
    task_id: Annotated[str | None, typer.Option("--task-id", help="Your id for the task.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Hits retrieved (hybrid).")] = 8,
    local_only: Annotated[
        bool, typer.Option("--local-only", help="Never escalate, whatever else is set.")
    ] = False,
    allow_escalation: Annotated[
        bool,
        typer.Option(
            "--allow-escalation",
            help="If the gate fails, ask the escalation model "
            "($DISTILL_ESCALATION_URL) with the same bundle.",
        ),
    ] = False,
    no_retrieval: Annotated[
        bool, typer.Option("--no-retrieval", help="The explicit baseline: no retrieved context.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Build and print the bundle; call no model, log nothing."),
    ] = False,
    model: ModelOpt = None,
    model_url: ModelUrlOpt = None,
    prompt_style: PromptStyleOpt = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Answer length cap.")
    ] = None,
    repo_root: RepoRootOpt = None,
    index_dir: IndexDirOpt = None,
    deadline: DeadlineOpt = None,
    min_relevance_: MinRelevanceOpt = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a running `distill serve`: replay there, where the index and model "
            "are warm (sends $DISTILL_API_TOKEN when set).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a task from the team's accepted playbooks with the local model, gate it, log it.

    Exit codes: 0 the final answer passed the gate (or --dry-run), 2 it did not, 3 abstained
    (no retrieved playbook clears --min-relevance: the team has not done this; no model was
    called), 1 an error (a model that failed or missed the deadline included: its run is still
    logged). Every run, abstained or not, is logged; a dry run writes nothing.
    """
    if server:
        _refuse_server_side(ctx)
        request = ReplayRequest(
            task=task,
            task_id=task_id,
            top_k=top_k,
            local_only=local_only,
            allow_escalation=allow_escalation,
            no_retrieval=no_retrieval,
            dry_run=dry_run,
            max_tokens=max_tokens,
        )
        token = settings.serve_token(os.environ)
        with err_console.status("replaying on the server…"):
            run = scrubbed_run(replay_remote(server, request, token=token))
    else:
        resolved, _ = resolve_home(home)
        local = settings.local_model(
            resolved, os.environ, url=model_url, model=model, prompt_style=prompt_style
        )
        escalation = settings.escalation_model(resolved, os.environ)
        index = index_at(resolved, index_dir)
        options = ReplayOptions(
            top_k=top_k,
            no_retrieval=no_retrieval,
            dry_run=dry_run,
            allow_escalation=allow_escalation,
            local_only=local_only,
            max_tokens=max_tokens or local.max_tokens,
            repo_root=repo_root,
            task_id=task_id,
            deadline=settings.replay_deadline(deadline, os.environ),
            min_relevance=settings.min_relevance(resolved, min_relevance_),
        )
        with err_console.status("replaying…"):
            run = replay(
                resolved,
                task,
                options,
                retriever=index.retriever,
                local=lambda: open_model(local),
                escalation=(lambda: open_model(escalation)) if escalation else None,
            )
    if as_json:
        print_json(run.model_dump(mode="json", by_alias=True))
    else:
        _print_run(run)
    _raise_model_failure(run)
    if run.verdict == "failed":
        raise typer.Exit(EXIT_GATE_FAILED)
    if run.verdict == "abstained":
        raise typer.Exit(EXIT_ABSTAINED)


def _raise_model_failure(run: ReplayRun) -> None:
    """A final attempt that got no answer is an error (exit 1), not a gate failure."""
    final = run.attempts[-1] if run.attempts else None
    if final is not None and final.error:
        raise DistillError(
            f"the {final.role} model failed: {final.error}",
            hint=f"the run is logged as {run.run_id}; check the model server, or raise "
            f"--deadline if it ran out of time",
        )


def _refuse_server_side(ctx: typer.Context) -> None:
    """The model, index, home and repo root are the server's settings, never a request's; a
    flag given on the command line is refused (the same setting from the environment is not
    this request's: it is ignored)."""
    given = [flag for name, flag in SERVER_SIDE.items() if _on_command_line(ctx, name)]
    if given:
        raise ConfigError(
            f"{', '.join(given)} cannot be combined with --server: they are the server's settings",
            hint="set them on `distill serve`, or drop --server",
        )


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)  # by name: typer ships its own copy of click
    return source is not None and source.name == "COMMANDLINE"


def _print_run(run: ReplayRun) -> None:
    if run.verdict == "abstained":
        typer.echo(abstain_answer(run))
        err_console.print("\nabstained: no model was called", highlight=False)
        return
    if run.verdict == "dry_run":
        typer.echo(run.bundle.prompt if run.bundle.exemplars else run.bundle.messages[-1].content)
        err_console.print(
            f"dry run: bundle of {len(run.bundle.exemplars)} exemplar(s), "
            f"{len(run.bundle.warnings)} warning(s), "
            f"{len(run.bundle.validation_steps)} step(s); no model called",
            highlight=False,
        )
        return
    typer.echo(run.final_answer)
    final = run.attempts[-1]
    verdict = "[green]passed[/]" if run.verdict == "passed" else "[red]failed[/]"
    err_console.print(
        f"\ngate: {verdict} ({final.model}, {final.latency_ms:.0f} ms"
        f"{', escalated' if run.escalated else ''})",
        highlight=False,
    )
    err_console.print(f"cited: {', '.join(run.cited_ids) or 'nothing'}", highlight=False)
    for check in final.gate.checks if final.gate else []:
        if not check.passed:
            err_console.print(f"  {escape(check.name)}: {escape(check.detail)}", highlight=False)
