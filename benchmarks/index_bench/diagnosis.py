"""Where a hybrid query's time goes, and a leaner hybrid built from the same calls.

The two sides are ``Retriever.vector_rows`` / ``Retriever.text_rows`` as shipped. "lean" runs
the same two LanceDB queries (cosine with the shipped ``ef``; a match query on ``text``) asking
only for id + score + ``_rowid``, fuses on ids exactly as ``fuse`` ranks, then fetches the top
rows' columns with one ``take_row_ids``; "2 threads" runs the two sides concurrently.
agreement = share of queries whose top ids equal ``Retriever.search(mode="hybrid")``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.index_bench.common import TOP_K, Fuse
from benchmarks.index_bench.timing import Latency, measure
from distill.index import Retriever, fuse
from distill.index.search import ANN_EF, HIT_COLUMNS, RRF_K

Rows = list[dict[str, Any]]


def fused_ids(vector: Rows, text: Rows, top_k: int, fusion: Fuse) -> list[tuple[str, int]]:
    """``fuse``'s ranking (same formulas, same tie-break) on lean rows: (id, _rowid) of the top."""
    scores: dict[str, float] = {}
    rowid: dict[str, int] = {}
    for hits, weight in ((vector, fusion.alpha), (text, 1.0 - fusion.alpha)):
        values = [row["_raw_score"] for row in hits]
        low, high = (min(values), max(values)) if values else (0.0, 0.0)
        for rank, row in enumerate(hits, 1):
            norm = 1.0 if high == low else (row["_raw_score"] - low) / (high - low)
            gain = 1.0 / (RRF_K + rank) if fusion.fusion == "rrf" else weight * norm
            scores[row["id"]] = scores.get(row["id"], 0.0) + gain
            rowid.setdefault(row["id"], row["_rowid"])
    order = sorted(scores, key=lambda key: (-scores[key], key))[:top_k]
    return [(key, rowid[key]) for key in order]


class LeanHybrid:
    """The hybrid query with ids only on both sides, then one fetch of the top rows.

    Each side is the query ``Retriever`` runs (cosine with ``ef=ANN_EF``; a match query on
    ``text``) asking LanceDB for id + score + ``_rowid`` only.
    """

    def __init__(self, retriever: Retriever, fusion: Fuse, pool: int, top_k: int) -> None:
        self.retriever, self.fusion, self.pool, self.top_k = retriever, fusion, pool, top_k
        self.table: Any = retriever.table
        self.executor = ThreadPoolExecutor(max_workers=2)

    def vector_side(self, query: str) -> Rows:
        vector = self.retriever.embedder.embed([query])[0]
        builder = self.table.search(vector, query_type="vector").distance_type("cosine")
        builder = builder.ef(ANN_EF).limit(self.pool).select(["id", "_distance"])
        rows: Rows = builder.with_row_id(True).to_list()
        for row in rows:
            row["_raw_score"] = 1.0 - float(row.pop("_distance"))
        return rows

    def text_side(self, query: str) -> Rows:
        from lancedb.query import MatchQuery

        match = MatchQuery(query, "text")  # type: ignore[call-arg]  # defaults exist at runtime
        builder = self.table.search(match, query_type="fts").limit(self.pool)
        rows: Rows = builder.select(["id", "_score"]).with_row_id(True).to_list()
        for row in rows:
            row["_raw_score"] = float(row.pop("_score"))
        return rows

    def fetch(self, top: list[tuple[str, int]]) -> Rows:
        if not top:
            return []
        rows = self.table.take_row_ids([r for _, r in top]).select(HIT_COLUMNS).to_list()
        by_id = {row["id"]: row for row in rows}
        return [by_id[i] for i, _ in top]

    def __call__(self, query: str, parallel: bool = False) -> Rows:
        if parallel:
            near = self.executor.submit(self.vector_side, query)
            text = self.executor.submit(self.text_side, query)
            vector, texts = near.result(), text.result()
        else:
            vector, texts = self.vector_side(query), self.text_side(query)
        return self.fetch(fused_ids(vector, texts, self.top_k, self.fusion))


def hybrid_breakdown(
    retriever: Retriever, queries: list[str], fusion: Fuse, top_k: int = TOP_K
) -> tuple[dict[str, Latency], float]:
    """Latency of each part of a hybrid query, and the lean hybrid's agreement."""
    pool = max(100, top_k * 4)
    lean = LeanHybrid(retriever, fusion, pool, top_k)
    embed = retriever.embedder.embed

    def near(query: str) -> Rows:
        return retriever.vector_rows(embed([query])[0], pool)

    fuse_inputs = {q: (near(q), retriever.text_rows(q, pool)) for q in queries}
    runs: dict[str, Callable[[str], Any]] = {
        "Retriever.search(mode='hybrid')": lambda q: retriever.search(
            q, top_k=top_k, **fusion.kwargs()
        ),
        f"↳ vector side: embed + {pool} rows, all columns": near,
        f"↳ fts side: {pool} rows, all columns": lambda q: retriever.text_rows(q, pool),
        "↳ fuse() of the two lists (python)": lambda q: fuse(*fuse_inputs[q], **fusion.kwargs()),
        f"↳ vector side, id + score only ({pool} rows)": lean.vector_side,
        f"↳ fts side, id + score only ({pool} rows)": lean.text_side,
        f"lean hybrid: ids only + fusion + take_row_ids({top_k})": lean,
        "lean hybrid, vector and fts sides in 2 threads": lambda q: lean(q, parallel=True),
    }
    latency = measure(queries, runs)
    same = sum(
        [h.id for h in retriever.search(q, top_k=top_k, **fusion.kwargs())]
        == [r["id"] for r in lean(q, parallel=True)]
        for q in queries
    )
    lean.executor.shutdown()
    return latency, same / len(queries)
