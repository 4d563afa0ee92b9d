"""`distill eval retrieval`: the project's yardstick for the index, on a BEIR-format dataset."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from distill import settings
from distill.cli.common import (
    FUSIONS,
    EmbedderOpt,
    FusionChoice,
    HomeOpt,
    IndexDirOpt,
    JsonOpt,
    MinRelevanceOpt,
    err_console,
    handles_errors,
    index_at,
    print_json,
    resolve_home,
    table,
)
from distill.errors import ConfigError
from distill.eval import ALL_MODES, RetrievalReport, load_beir, run_retrieval_eval, settings_for
from distill.eval.abstain import evaluate_task_retrieval, task_retrieval_report
from distill.eval.replay_eval import load_tasks
from distill.eval.retrieval import EvalMode
from distill.index.search import DEFAULT_ALPHA

app = typer.Typer(no_args_is_help=True, help="Measure how well the index retrieves.")


class ModeChoice(StrEnum):
    fts = "fts"
    vector = "vector"
    hybrid = "hybrid"
    jaccard = "jaccard"
    all = "all"


_MODES: dict[ModeChoice, list[EvalMode]] = {
    ModeChoice.fts: ["fts"],
    ModeChoice.vector: ["vector"],
    ModeChoice.hybrid: ["hybrid"],
    ModeChoice.jaccard: ["jaccard"],
    ModeChoice.all: list(ALL_MODES),
}


@app.command("retrieval")
@handles_errors
def retrieval_command(
    beir: Annotated[
        Path | None,
        typer.Option(
            "--beir",
            help="A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    tasks: Annotated[
        Path | None,
        typer.Option(
            "--tasks",
            help="Instead of --beir: a replay task file (JSONL of {task, relevant_ids, kind?}) "
            "searched on the home's index: relevant ids retrieved and abstentions per kind, "
            "and the relevance curve. No model is called.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="The qrels file: test, train, dev…")] = (
        "test"
    ),
    mode: Annotated[
        ModeChoice, typer.Option("--mode", help="Search mode to score; all = every mode.")
    ] = ModeChoice.all,
    fusion: Annotated[
        FusionChoice, typer.Option("--fusion", help="Hybrid fusion: rank (rrf) or score.")
    ] = FusionChoice.weighted,
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Weighted fusion: weight of the vector side.", min=0, max=1),
    ] = DEFAULT_ALPHA,
    embedder: EmbedderOpt = None,
    limit_queries: Annotated[
        int | None,
        typer.Option("--limit-queries", help="Score only the first N judged queries.", min=1),
    ] = None,
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    min_relevance_: MinRelevanceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index a BEIR corpus in a temporary folder and score each search mode on its queries.

    Reports nDCG@10, Recall@10, Recall@100, MRR@10 and query latency (p50/p95) per mode, and
    the embedding rate. Mode jaccard is the old token-overlap baseline, for comparison.
    Example: distill eval retrieval --beir data/scifact --split test --mode hybrid.
    With --tasks FILE instead, the home's own index is searched for each replay task
    (--home, --index-dir and --min-relevance apply to --tasks).
    """
    if (beir is None) == (tasks is None):
        raise ConfigError("give one of --beir DIR or --tasks FILE", hint="see --help")
    if tasks is not None:
        _task_retrieval(tasks, home, index_dir, min_relevance_, as_json)
        return
    assert beir is not None  # one of the two, checked above
    if split in ("", ".", "..") or "/" in split:
        raise ConfigError(f"--split {split!r} is not a split name", hint="e.g. --split test")
    dataset = load_beir(beir, split).limited(limit_queries)
    modes = _MODES[mode]
    index = settings.index_settings(
        settings.resolve_home(home, os.environ), os.environ, embedder=embedder
    )
    chosen = index.make_embedder() if modes != ["jaccard"] else None
    scored = settings_for(modes, FUSIONS[fusion], alpha)
    err_console.print(
        f"{dataset.name} ({split}): {len(dataset.docs)} docs, {len(dataset.qrels)} queries",
        highlight=False,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        bars: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                label = "embedding corpus" if phase == "embed" else f"queries: {phase}"
                bars[phase] = bar.add_task(label, total=total)
            bar.update(bars[phase], completed=done, total=total)

        report = run_retrieval_eval(dataset, chosen, scored, progress=on_progress)
    _print_report(report, Console() if not as_json else err_console)
    if as_json:
        print_json(report.to_dict())


def _task_retrieval(
    tasks: Path, home: Path | None, index_dir: str | None, threshold: float | None, as_json: bool
) -> None:
    resolved, _ = resolve_home(home)
    items = load_tasks(tasks)
    chosen = settings.min_relevance(resolved, threshold)
    retriever = index_at(resolved, index_dir).retriever()
    with err_console.status("searching…") as status:
        results = evaluate_task_retrieval(
            retriever, items, progress=lambda n, total: status.update(f"task {n}/{total}…")
        )
    report = task_retrieval_report(results, chosen)
    if as_json:
        print_json(report)
        return
    rows = [
        [kind, str(r["tasks"]), f"{r['retrieved_relevant_rate']:.0%}", f"{r['abstained_rate']:.0%}"]
        for kind, r in report["kinds"].items()
    ]
    console = Console()
    columns = ["kind", "tasks", "retrieved relevant", f"abstained at {chosen}"]
    console.print(table(f"retrieval on {tasks}", columns, rows))
    kinds = list(report["kinds"])
    curve = [
        [f"{p['threshold']:.2f}", *(f"{p[k]:.0%}" for k in kinds)]
        for p in report["relevance_curve"]
    ]
    console.print(table("relevance curve: share abstaining", ["threshold", *kinds], curve))


def _print_report(report: RetrievalReport, console: Console) -> None:
    rate = "n/a" if report.embed_docs_per_s is None else f"{report.embed_docs_per_s:.1f}"
    console.print(
        f"{report.dataset} {report.split}: {report.queries} queries, {report.docs} docs, "
        f"embedder {report.embedder or 'none'} ({rate} docs/s)",
        highlight=False,
    )
    rows = []
    for result in report.results:
        data = result.to_dict()
        rows.append(
            [result.setting.name]
            + [f"{data[name]:.4f}" for name in ("ndcg@10", "recall@10", "recall@100", "mrr@10")]
            + [f"{data['p50_ms']:.1f}", f"{data['p95_ms']:.1f}", str(data["failed_queries"])]
        )
    columns = ["mode", "nDCG@10", "R@10", "R@100", "MRR@10", "p50 ms", "p95 ms", "failed"]
    console.print(table("retrieval", columns, rows))
    for result in report.results:
        for query_id, error in list(result.failed.items())[:3]:
            err_console.print(
                f"[yellow]warning:[/] {result.setting.name}: query {query_id} failed "
                f"({escape(error)})",
                highlight=False,
            )
