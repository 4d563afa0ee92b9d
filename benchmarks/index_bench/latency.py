"""Query latency at ``--rows`` against the in-memory baseline, then recall and a large update.

The table is built with the hashing embedder (MiniLM would need ~40 min to embed 100k texts on 2
cores). ``Retriever.search`` in vector, fts and hybrid mode runs against the baseline in the same
process over the same vectors and texts, p50/p95 over the queries, modes interleaved per query;
then again with MiniLM embedding each query (vectors still hash-384: rankings are meaningless,
the latency is what a MiniLM index of that size costs).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.index_bench.baseline import Baseline, hit_columns
from benchmarks.index_bench.common import TOP_K, UPDATE_FRACTION, Fuse, Options, log
from benchmarks.index_bench.corpus import Corpus, change_some, generate, make_queries
from benchmarks.index_bench.diagnosis import hybrid_breakdown
from benchmarks.index_bench.recall import RecallRow, ann_recall
from benchmarks.index_bench.timing import Latency, Timed, TimedEmbedder, measure, timed_store_call
from distill.index import Embedder, HashingEmbedder, PlaybookStore, Retriever
from distill.index.search import HIT_COLUMNS

BASE_HYBRID = "baseline hybrid (numpy + bm25s + fuse)"
Run = Callable[[str], Any]


@dataclass
class SearchResult:
    rows: int
    build: Timed
    ann_index: bool
    ann_threshold: int
    baseline_index_s: float
    queries: int
    hash_latency: dict[str, Latency]
    minilm_latency: dict[str, Latency] | None = None
    minilm_embed: Latency | None = None
    recall: dict[str, RecallRow] = field(default_factory=dict)  # → (strict, tie-aware, p50 ms)
    update: Timed | None = None
    update_changed: int = 0
    update_ok: bool = True
    index_info: list[str] = field(default_factory=list)
    breakdown: dict[str, Latency] = field(default_factory=dict)
    lean_agreement: float = 1.0


def _runs(retriever: Retriever, baseline: Baseline, fusion: Fuse, fts: bool) -> dict[str, Run]:
    """Each search as the Retriever and the baseline run it (fts: also the text-only mode)."""
    hybrid = fusion.kwargs()
    runs: dict[str, Run] = {
        "LanceDB vector": lambda q: retriever.search(q, mode="vector", top_k=TOP_K),
        "LanceDB fts": lambda q: retriever.search(q, mode="fts", top_k=TOP_K),
        "LanceDB hybrid": lambda q: retriever.search(q, mode="hybrid", top_k=TOP_K, **hybrid),
        "baseline vector (numpy exact)": lambda q: baseline.search(q, "vector", TOP_K),
        "baseline fts (bm25s)": lambda q: baseline.search(q, "fts", TOP_K),
        BASE_HYBRID: lambda q: baseline.search(q, "hybrid", TOP_K),
    }
    if not fts:
        del runs["LanceDB fts"], runs["baseline fts (bm25s)"]
    return runs


def _brute_force(retriever: Retriever) -> Run:
    """The Retriever's vector query, but brute force inside LanceDB."""
    table: Any = retriever.table

    def flat(query: str) -> Any:
        vector = retriever.embedder.embed([query])[0]
        builder = table.search(vector, query_type="vector").distance_type("cosine")
        builder = builder.bypass_vector_index().limit(TOP_K)
        return builder.select([*HIT_COLUMNS, "_distance"]).to_list()

    return flat


def _minilm_latency(
    store: PlaybookStore, hashing: Embedder, baseline: Baseline, queries: list[str], fuse: Fuse
) -> tuple[dict[str, Latency], Latency]:
    from distill.index import SentenceTransformerEmbedder

    minilm = SentenceTransformerEmbedder()
    minilm.embed(["warm up"])
    # Deliberately past the identity check: vectors are hash-384, queries MiniLM-384.
    retriever = Retriever(store, hashing)
    retriever.embedder = minilm
    log("search: latency with MiniLM query embedding")
    latency = measure(queries, _runs(retriever, baseline.with_embedder(minilm), fuse, fts=False))
    embed = measure(queries, {"MiniLM embed one query": lambda q: minilm.embed([q])})
    return latency, embed["MiniLM embed one query"]


def _large_update(
    options: Options, store: PlaybookStore, corpus: Corpus, embedder: TimedEmbedder
) -> tuple[Timed, int, bool]:
    log(f"search: update of the {options.rows:,}-row table, {UPDATE_FRACTION:.0%} changed")
    changed_samples, changed_ids = change_some(corpus, UPDATE_FRACTION, options.seed)
    update = timed_store_call(
        store.update, changed_samples, embedder, ann_threshold=options.ann_threshold
    )
    r = update.report
    ok = r.embedded == r.updated == len(changed_ids) and r.deleted == 0
    log(f"search: update {update.seconds:.1f}s")
    return update, len(changed_ids), ok


def _build_table(
    options: Options, workdir: Path
) -> tuple[Corpus, PlaybookStore, TimedEmbedder, Timed]:
    log(f"search: generating {options.rows:,} playbooks")
    corpus = generate(options.rows, options.seed + 100)
    store = PlaybookStore(str(workdir / "hash"))
    embedder = TimedEmbedder(HashingEmbedder())
    log(f"search: building the table (hash-384, ann_threshold {options.ann_threshold:,})")
    build = timed_store_call(
        store.build, corpus.samples, embedder, ann_threshold=options.ann_threshold
    )
    log(f"search: built in {build.seconds:.1f}s, ann_index={build.report.ann_index}")
    return corpus, store, embedder, build


def _index_info(retriever: Retriever) -> list[str]:
    table: Any = retriever.table
    return [f"{ix.name}: {ix.index_type} on {', '.join(ix.columns)}" for ix in table.list_indices()]


def measure_search(options: Options, workdir: Path) -> SearchResult:
    corpus, store, embedder, build = _build_table(options, workdir)
    ann = build.report.ann_index
    columns, vectors = hit_columns(store.open())
    start = time.perf_counter()
    hashing = HashingEmbedder()
    baseline = Baseline(columns, vectors, hashing, options.fuse)
    baseline_index_s = time.perf_counter() - start
    retriever = Retriever(store, hashing)
    queries = make_queries(corpus, options.queries, options.seed)
    runs = _runs(retriever, baseline, options.fuse, fts=True)
    if ann:
        runs["LanceDB vector, brute force (bypass_vector_index)"] = _brute_force(retriever)
    log(f"search: latency over {len(queries)} queries (hash query embedding)")
    result = SearchResult(
        rows=options.rows,
        build=build,
        ann_index=ann,
        ann_threshold=options.ann_threshold,
        baseline_index_s=baseline_index_s,
        queries=len(queries),
        hash_latency=measure(queries, runs),
        index_info=_index_info(retriever),
    )
    if not options.skip_minilm_query:
        result.minilm_latency, result.minilm_embed = _minilm_latency(
            store, hashing, baseline, queries, options.fuse
        )
    log("search: hybrid breakdown and a leaner hybrid (diagnosis)")
    result.breakdown, result.lean_agreement = hybrid_breakdown(retriever, queries, options.fuse)
    log("search: recall@10 against numpy exact")
    result.recall = ann_recall(retriever, baseline.vectors, columns["id"], queries, ann)
    if not options.skip_large_update:
        del retriever, baseline, runs
        gc.collect()
        result.update, result.update_changed, result.update_ok = _large_update(
            options, store, corpus, embedder
        )
    return result
