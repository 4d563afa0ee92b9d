"""`distill index build|update|stats|search`: the LanceDB index over the RAG export."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from distill.cli.common import (
    HomeOpt,
    JsonOpt,
    NoWaitOpt,
    err_console,
    handles_errors,
    home_writer,
    print_json,
    print_report,
    resolve_home,
    table,
)
from distill.errors import ValidationFailed
from distill.index import PlaybookStore, Retriever, make_embedder
from distill.index.maintenance import cleanup
from distill.index.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion, Mode
from distill.index.stage import index_export
from distill.index.store import DEFAULT_ANN_THRESHOLD, resolve_index_uri

app = typer.Typer(no_args_is_help=True, help="Build, update, inspect and search the index.")

IndexDirOpt = Annotated[
    str | None,
    typer.Option(
        "--index-dir",
        help="LanceDB database (any URI LanceDB accepts). Default: "
        "$DISTILL_INDEX_URI, else <home>/index.",
        show_default=False,
    ),
]
EmbedderOpt = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        help="minilm (all-MiniLM-L6-v2) or hash-<dim> (seeded, no model). "
        "Default: $DISTILL_EMBEDDER, else minilm.",
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the hashing embedder.")]
AnnOpt = Annotated[
    int, typer.Option("--ann-threshold", help="Rows from which an ANN vector index is built.")
]


def _build(
    home: HomeOpt,
    index_dir: IndexDirOpt,
    embedder: EmbedderOpt,
    seed: int,
    ann_threshold: int,
    as_json: bool,
    *,
    rebuild: bool,
    no_wait: bool,
) -> None:
    resolved, _ = resolve_home(home)
    uri = resolve_index_uri(index_dir, resolved.index_dir)
    command = "index build" if rebuild else "index update"
    with (
        home_writer(resolved, command, no_wait),
        err_console.status("loading the embedder…") as status,
    ):
        model = make_embedder(embedder, seed=seed)
        report, result = index_export(
            resolved,
            uri,
            model,
            rebuild=rebuild,
            ann_threshold=ann_threshold,
            progress=lambda done, total: status.update(f"embedding {done:,}/{total:,}…"),
        )
    print_report(report)
    err_console.print(
        f"  embedded {result.embedded}, inserted {result.inserted}, updated {result.updated}, "
        f"deleted {result.deleted}, unchanged {result.unchanged}; table version "
        f"{result.version}",
        highlight=False,
    )
    if as_json:
        print_json({**report.to_dict(), "index": result.__dict__})
    if not report.passed:
        raise ValidationFailed(f"{command} failed its own checks", report.errors)


@app.command("build")
@handles_errors
def build_command(
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    ann_threshold: AnnOpt = DEFAULT_ANN_THRESHOLD,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed every playbook in exports/rag/playbooks.jsonl and publish a new table version."""
    _build(home, index_dir, embedder, seed, ann_threshold, as_json, rebuild=True, no_wait=no_wait)


@app.command("update")
@handles_errors
def update_command(
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    ann_threshold: AnnOpt = DEFAULT_ANN_THRESHOLD,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed only new or changed playbooks (by sig_hash), delete those gone, refresh indexes."""
    _build(home, index_dir, embedder, seed, ann_threshold, as_json, rebuild=False, no_wait=no_wait)


@app.command("cleanup")
@handles_errors
def cleanup_command(
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    older_than_days: Annotated[
        float,
        typer.Option(
            "--older-than-days",
            help="Keep versions younger than this (default 0: keep only the published one).",
        ),
    ] = 0.0,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove old table versions and files an interrupted build left; keep the published one."""
    resolved, _ = resolve_home(home)
    store = PlaybookStore(resolve_index_uri(index_dir, resolved.index_dir))
    with home_writer(resolved, "index cleanup", no_wait):
        result = cleanup(store, timedelta(days=older_than_days))
    err_console.print(
        f"index cleanup: removed {result['versions_removed']} old version(s), "
        f"{result['bytes_removed'] / 1e6:.1f} MB; published version {result['version']}",
        highlight=False,
    )
    if as_json:
        print_json(result)


@app.command("stats")
@handles_errors
def stats_command(
    home: HomeOpt = None, index_dir: IndexDirOpt = None, as_json: JsonOpt = False
) -> None:
    """Rows, published version, embedder, unindexed rows and size of the index."""
    resolved, _ = resolve_home(home)
    stats = PlaybookStore(resolve_index_uri(index_dir, resolved.index_dir)).stats()
    if as_json:
        print_json(stats)
        return
    embedder = stats["embedder"]
    rows = [
        [key, escape(str(value))]
        for key, value in (
            ("uri", stats["uri"]),
            ("rows", stats["rows"]),
            ("version", stats["version"]),
            ("embedder", f"{embedder['name']} (dim {embedder['dim']}, seed {embedder['seed']})"),
            ("indexes", ", ".join(stats["indexes"])),
            ("unindexed rows", stats["unindexed_rows"]),
            ("ANN index", stats["ann_index"]),
            ("size", f"{stats['size_bytes'] / 1e6:.1f} MB"),
        )
    ]
    Console().print(table("index", ["", "value"], rows))


@app.command("search")
@handles_errors
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, vector or fts.")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", help="How many hits.")] = 8,
    category: Annotated[str | None, typer.Option("--category", help="Only this category.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source stream.")] = None,
    fusion: Annotated[
        str, typer.Option("--fusion", help="Hybrid fusion: rrf or weighted.")
    ] = DEFAULT_FUSION,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Weighted fusion: weight of the vector side.")
    ] = DEFAULT_ALPHA,
    as_json: JsonOpt = False,
) -> None:
    """Search the playbooks: hybrid (weighted fusion; --fusion rrf for RRF, K=60), vector or fts.

    Ranked by the fused score (normalised per query); each hit also shows its relevance, an
    absolute 0-1 signal (query cosine and BM25 combined) that replay compares with
    --min-relevance.
    """
    if mode not in ("hybrid", "vector", "fts") or fusion not in ("rrf", "weighted"):
        raise typer.BadParameter("--mode is hybrid|vector|fts, --fusion is rrf|weighted")
    resolved, _ = resolve_home(home)
    retriever = Retriever(PlaybookStore(resolve_index_uri(index_dir, resolved.index_dir)))
    hits = retriever.search(
        query,
        mode=_mode(mode),
        top_k=top_k,
        category=category,
        source=source,
        fusion=_fusion(fusion),
        alpha=alpha,
    )
    if as_json:
        print_json([hit.to_dict() for hit in hits])
        return
    rows = [
        [
            str(rank),
            escape(hit.id),
            f"{hit.score:.4f}",
            f"{hit.relevance:.2f}" if hit.relevance is not None else "-",
            hit.category,
            escape(hit.title),
        ]
        for rank, hit in enumerate(hits, 1)
    ]
    columns = ["#", "id", "score", "relevance", "category", "title"]
    Console().print(table(f"{mode} search: {escape(query)}", columns, rows))


def _mode(value: str) -> Mode:
    return "vector" if value == "vector" else "fts" if value == "fts" else "hybrid"


def _fusion(value: str) -> Fusion:
    return "weighted" if value == "weighted" else "rrf"
