"""`distill index build|update|cleanup|unlock|stats|search`: the LanceDB index of the playbooks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from distill.cli.common import (
    DEFAULT_FUSION_CHOICE,
    FUSIONS,
    SEARCH_MODES,
    DryRunOpt,
    EmbedderOpt,
    EngineOpt,
    FusionChoice,
    HomeOpt,
    IndexDirOpt,
    JsonOpt,
    NoWaitOpt,
    RayAddressOpt,
    SearchMode,
    SeedOpt,
    engine_for,
    err_console,
    handles_errors,
    home_writer,
    index_at,
    print_json,
    print_report,
    resolve_home,
    table,
)
from distill.engine import EngineName
from distill.errors import ValidationFailed
from distill.index import PlaybookStore
from distill.index.maintenance import cleanup
from distill.index.objectstore import index_files
from distill.index.search import DEFAULT_ALPHA, search_payload
from distill.index.stage import index_export
from distill.index.store import DEFAULT_ANN_THRESHOLD

app = typer.Typer(no_args_is_help=True, help="Build, update, inspect and search the index.")

AnnOpt = Annotated[
    int, typer.Option("--ann-threshold", help="Rows from which an ANN vector index is built.")
]


@dataclass(frozen=True)
class _BuildFlags:
    home: Path | None
    index_dir: str | None
    embedder: str | None
    seed: int
    ann_threshold: int
    dry_run: bool
    no_wait: bool
    as_json: bool
    engine: tuple[EngineName, str | None] = (EngineName.local, None)


def _build(flags: _BuildFlags, *, rebuild: bool) -> None:
    resolved, _ = resolve_home(flags.home)
    index = index_at(resolved, flags.index_dir, flags.embedder, flags.seed)
    command = "index build" if rebuild else "index update"
    with (
        home_writer(resolved, command, flags.no_wait, dry_run=flags.dry_run),
        engine_for(*flags.engine) as engine,
        err_console.status("loading the embedder…") as status,
    ):
        report, result = index_export(
            resolved,
            index.uri,
            engine.embedder(index.embedder, index.seed),
            rebuild=rebuild,
            ann_threshold=flags.ann_threshold,
            progress=lambda done, total: status.update(f"embedding {done:,}/{total:,}…"),
            dry_run=flags.dry_run,
        )
    print_report(report)
    verb = "would embed" if flags.dry_run else "embedded"
    err_console.print(
        f"  {verb} {result.embedded}, inserted {result.inserted}, updated {result.updated}, "
        f"deleted {result.deleted}, unchanged {result.unchanged}; table version "
        f"{result.version}",
        highlight=False,
    )
    if flags.as_json:
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
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed every playbook in exports/rag/playbooks.jsonl and publish a new table version.

    Exit code 1 when the new version fails its own checks (its ids are not the export's).
    """
    flags = _BuildFlags(
        home,
        index_dir,
        embedder,
        seed,
        ann_threshold,
        dry_run,
        no_wait,
        as_json,
        (engine, ray_address),
    )
    _build(flags, rebuild=True)


@app.command("update")
@handles_errors
def update_command(
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    embedder: EmbedderOpt = None,
    seed: SeedOpt = 0,
    ann_threshold: AnnOpt = DEFAULT_ANN_THRESHOLD,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    dry_run: DryRunOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed only new or changed playbooks (by sig_hash), delete those gone, refresh indexes.

    Exit code 1 when the new version fails its own checks (its ids are not the export's).
    """
    flags = _BuildFlags(
        home,
        index_dir,
        embedder,
        seed,
        ann_threshold,
        dry_run,
        no_wait,
        as_json,
        (engine, ray_address),
    )
    _build(flags, rebuild=False)


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
    store = PlaybookStore(index_at(resolved, index_dir).uri)
    with home_writer(resolved, "index cleanup", no_wait):
        result = cleanup(store, timedelta(days=older_than_days))
    err_console.print(
        f"index cleanup: removed {result['versions_removed']} old version(s), "
        f"{result['bytes_removed'] / 1e6:.1f} MB; published version {result['version']}",
        highlight=False,
    )
    if as_json:
        print_json(result)


@app.command("unlock")
@handles_errors
def unlock_command(
    home: HomeOpt = None, index_dir: IndexDirOpt = None, as_json: JsonOpt = False
) -> None:
    """Remove the writer lock a killed build left on an object-store index (s3://…).

    Use it only when the writer the lock names is gone: while that one runs, a second writer
    would interleave its table versions with the first's. A local index has no lock of its own (the
    home's writer lock is released when its process exits).
    """
    resolved, _ = resolve_home(home)
    uri = index_at(resolved, index_dir).uri
    owner = index_files(uri).unlock()
    held = f"removed the lock of {owner.describe()}" if owner else "no writer lock to remove"
    err_console.print(f"index unlock: {held} ({uri})", highlight=False)
    if as_json:
        print_json({"uri": uri, "removed": owner.__dict__ if owner else None})


@app.command("stats")
@handles_errors
def stats_command(
    home: HomeOpt = None, index_dir: IndexDirOpt = None, as_json: JsonOpt = False
) -> None:
    """Rows, published version, embedder, unindexed rows and size of the index."""
    resolved, _ = resolve_home(home)
    stats = PlaybookStore(index_at(resolved, index_dir).uri).stats()
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
    mode: Annotated[SearchMode, typer.Option("--mode", help="How to search.")] = (
        SearchMode.hybrid
    ),
    top_k: Annotated[int, typer.Option("--top-k", help="How many hits.", min=1)] = 8,
    category: Annotated[str | None, typer.Option("--category", help="Only this category.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source stream.")] = None,
    fusion: Annotated[
        FusionChoice, typer.Option("--fusion", help="Hybrid fusion.")
    ] = DEFAULT_FUSION_CHOICE,
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Weighted fusion: weight of the vector side.", min=0, max=1),
    ] = DEFAULT_ALPHA,
    as_json: JsonOpt = False,
) -> None:
    """Search the playbooks: hybrid (weighted fusion; --fusion rrf for RRF, K=60), vector or fts.

    Ranked by the fused score (normalised per query); each hit also shows its relevance, an
    absolute 0-1 signal (query cosine and BM25 combined) that replay compares with
    --min-relevance. --json prints what POST /v1/search answers: {index_version, mode, hits:
    [{rank, id, score, relevance, …}]}.
    """
    resolved, _ = resolve_home(home)
    retriever = index_at(resolved, index_dir).retriever()
    hits = retriever.search(
        query,
        mode=SEARCH_MODES[mode],
        top_k=top_k,
        category=category,
        source=source,
        fusion=FUSIONS[fusion],
        alpha=alpha,
    )
    if as_json:
        print_json(search_payload(retriever.version, SEARCH_MODES[mode], hits))
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
    Console().print(table(f"{mode.value} search: {escape(query)}", columns, rows))
