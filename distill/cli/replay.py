"""`distill replay --task "..."`: the command agents call."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from distill.cli.common import (
    HomeOpt,
    JsonOpt,
    ModelOpt,
    ModelUrlOpt,
    PromptStyleOpt,
    RepoRootOpt,
    err_console,
    handles_errors,
    print_json,
    resolve_home,
)
from distill.cli.index import IndexDirOpt
from distill.errors import ConfigError, DistillError
from distill.index import PlaybookStore, Retriever
from distill.index.store import resolve_index_uri
from distill.replay import ReplayOptions, replay
from distill.replay.config import (
    escalation_settings,
    local_settings,
    min_relevance,
    open_model,
    replay_deadline,
)
from distill.replay.limits import DEADLINE_ENV
from distill.replay.remote import replay_remote, token_from_env
from distill.replay.run import abstain_answer, scrubbed_run
from distill.schemas import ReplayRequest, ReplayRun

EXIT_GATE_FAILED = 2
EXIT_ABSTAINED = 3
MinRelevanceOpt = Annotated[
    float | None,
    typer.Option(
        "--min-relevance",
        help="Relevance (0-1: query cosine and BM25 combined) a retrieved playbook needs to "
        "count for the task; when none has it, no model is called and the run abstains "
        "(else [replay] min_relevance in models/models.toml, else the calibrated default).",
        show_default=False,
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        help="Seconds the model calls of one replay may take in all, retries and escalation "
        f"included (else ${DEADLINE_ENV}, else 180).",
        show_default=False,
    ),
]


@handles_errors
def replay_command(
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
        typer.Option("--dry-run", help="Build and print the bundle; call no model (still logged)."),
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
    logged). Every run, abstained or not, is logged.
    """
    if server:
        _refuse_server_side(
            {
                "--home": home,
                "--model": model,
                "--model-url": model_url,
                "--prompt-style": prompt_style,
                "--repo-root": repo_root,
                "--index-dir": index_dir,
                "--deadline": deadline,
                "--min-relevance": min_relevance_,
            }
        )
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
        with err_console.status("replaying on the server…"):
            run = scrubbed_run(replay_remote(server, request, token=token_from_env()))
    else:
        resolved, _ = resolve_home(home)
        settings = local_settings(resolved, url=model_url, model=model, prompt_style=prompt_style)
        escalation = escalation_settings(resolved)
        uri = resolve_index_uri(index_dir, resolved.index_dir)
        options = ReplayOptions(
            top_k=top_k,
            no_retrieval=no_retrieval,
            dry_run=dry_run,
            allow_escalation=allow_escalation,
            local_only=local_only,
            max_tokens=max_tokens or settings.max_tokens,
            repo_root=repo_root,
            task_id=task_id,
            deadline=replay_deadline(deadline),
            min_relevance=min_relevance(resolved, min_relevance_),
        )
        with err_console.status("replaying…"):
            run = replay(
                resolved,
                task,
                options,
                retriever=lambda: Retriever(PlaybookStore(uri)),
                local=lambda: open_model(settings),
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


def _refuse_server_side(flags: dict[str, object]) -> None:
    """The model, index, home and repo root are the server's settings, never a request's."""
    given = [flag for flag, value in flags.items() if value is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)} cannot be combined with --server: they are the server's settings",
            hint="set them on `distill serve`, or drop --server",
        )


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
