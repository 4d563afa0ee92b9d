"""The report's query-latency part: latency tables, the diagnosis, recall, the large update."""

from __future__ import annotations

from benchmarks.index_bench.common import LATENCY_TARGET, TOP_K, WARMUP_QUERIES, Fuse
from benchmarks.index_bench.latency import BASE_HYBRID, SearchResult
from benchmarks.index_bench.recall import SHIPPED, RecallRow
from benchmarks.index_bench.timing import Latency

Target = tuple[str, str, bool | None]  # name, measured, passed (None: reported, no target)


def latency_table(latency: dict[str, Latency]) -> list[str]:
    out = ["| search | p50 ms | p95 ms | mean ms |", "|---|--:|--:|--:|"]
    for lat in latency.values():
        out.append(f"| {lat.label} | {lat.p50:.1f} | {lat.p95:.1f} | {lat.mean:.1f} |")
    return out


def recall_rows(recall: dict[str, RecallRow]) -> list[str]:
    return [f"| {name} | {s:.3f} | {t:.3f} | {ms:.1f} |" for name, (s, t, ms) in recall.items()]


def _latency(search: SearchResult, fuse: Fuse) -> list[str]:
    out = [
        f"## Query latency: {search.rows:,} playbooks, hash-384 vectors",
        "",
        f"Table built with `PlaybookStore.build(..., ann_threshold={search.ann_threshold:,})` "
        f"in {search.build.seconds:.1f}s; ANN index: {'yes' if search.ann_index else 'no'} "
        f"({'; '.join(search.index_info)}). Baseline in memory: the same vectors read back "
        f"from the table (numpy float32, exact cosine = dot product of unit vectors) and "
        f"the same texts in bm25s (stopwords en, no stemmer; indexed in "
        f"{search.baseline_index_s:.1f}s), fused by `distill.index.search.fuse` with the "
        f"same settings as the LanceDB hybrid ({fuse.label()}) over the same candidate "
        f"pool (100 per side). top_k={TOP_K}; "
        f"{search.queries} queries after {WARMUP_QUERIES} warm-up queries, every mode "
        f"interleaved per query.",
        "",
        "Build phases:",
        "",
        "| phase | seconds |",
        "|---|--:|",
    ]
    out += [f"| {name} | {s:.2f} |" for name, s in search.build.breakdown()]
    out += ["", "### Query embedded with the hashing embedder", ""]
    return out + latency_table(search.hash_latency)


def _minilm(search: SearchResult) -> list[str]:
    if search.minilm_latency is None or search.minilm_embed is None:
        return []
    out = [
        "",
        "### Query embedded with MiniLM (index vectors still hash-384)",
        "",
        "The Retriever's embedder was swapped after opening (past the identity check) "
        "and the baseline embeds with the same model, so both pay the same MiniLM "
        f"query embedding: p50 {search.minilm_embed.p50:.1f} ms, p95 "
        f"{search.minilm_embed.p95:.1f} ms on its own. Rankings are meaningless here; "
        "latencies are what a MiniLM index of this size costs. fts-only does not embed "
        "(see above).",
        "",
    ]
    return out + latency_table(search.minilm_latency)


def _diagnosis(search: SearchResult, fuse: Fuse) -> list[str]:
    if not search.breakdown:
        return []
    out = [
        "",
        "### Diagnosis: where a hybrid query goes (hash query embedding)",
        "",
        "The two sides as `Retriever.search` runs them, then the same LanceDB calls "
        "asking only for id + score (+ `_rowid`) over the candidate pool, fused on ids "
        f"exactly as `fuse` ranks ({fuse.label()}), then one `take_row_ids` for the "
        "top rows' columns. "
        f"The lean hybrid returned the same top {TOP_K} ids as `Retriever.search` for "
        f"{search.lean_agreement:.0%} of the queries.",
        "",
    ]
    return out + latency_table(search.breakdown)


def _recall(search: SearchResult) -> list[str]:
    out = [
        "",
        "### Vector recall@10 against numpy exact cosine (hash query vectors)",
        "",
        "strict = overlap of ids with the exact top 10; tie-aware also counts a hit whose "
        "exact score equals the 10th exact score (hash vectors have ties). p50: the "
        "shipped row is `Retriever.vector_rows(vector, 10)` after embedding the query (hash "
        "query embedding, all columns); the others are the bare LanceDB query with only id + "
        "distance selected.",
        "",
        "| store vector query | recall@10 | tie-aware | p50 ms |",
        "|---|--:|--:|--:|",
    ]
    return out + recall_rows(search.recall)


def _update(search: SearchResult) -> list[str]:
    u = search.update
    if u is None:
        return []
    out = [
        "",
        f"### Informative: update of the {search.rows:,}-row table, "
        f"{search.update_changed:,} rows changed (hash-384)",
        "",
        f"{u.seconds:.1f}s = {u.seconds / search.build.seconds:.1%} of its build "
        f"({search.build.seconds:.1f}s); report: embedded {u.report.embedded}, updated "
        f"{u.report.updated}, deleted {u.report.deleted}"
        f"{'' if search.update_ok else ' — **counts wrong**'}.",
        "",
        "| phase | seconds |",
        "|---|--:|",
    ]
    return out + [f"| {name} | {s:.2f} |" for name, s in u.breakdown()]


def search_section(search: SearchResult, fuse: Fuse) -> list[str]:
    parts = (_latency(search, fuse), _minilm(search), _diagnosis(search, fuse))
    return [*parts[0], *parts[1], *parts[2], *_recall(search), *_update(search), ""]


def _latency_target(latency: dict[str, Latency], rows: int, query: str) -> Target:
    lance, base = latency["LanceDB hybrid"].p50, latency[BASE_HYBRID].p50
    return (
        f"hybrid p50 ≤ {LATENCY_TARGET:g}× baseline p50 ({rows:,} rows, {query})",
        f"{lance:.1f} ms vs {base:.1f} ms = {lance / base:.2f}×",
        lance / base <= LATENCY_TARGET,
    )


def search_targets(search: SearchResult) -> list[Target]:
    targets = [_latency_target(search.hash_latency, search.rows, "hash query")]
    if search.minilm_latency is not None and search.minilm_embed is not None:
        targets.append(_latency_target(search.minilm_latency, search.rows, "MiniLM query"))
    strict, tied, _ = search.recall[SHIPPED]
    name = (
        "ANN recall@10 vs exact (report; no target set)"
        if search.ann_index
        else "vector recall@10 vs exact (no ANN index at this size)"
    )
    targets.append((name, f"{strict:.3f} (tie-aware {tied:.3f})", None))
    return targets
