"""The in-memory baseline: numpy exact cosine + bm25s over the same vectors and texts, fused by
``distill.index.search.fuse`` the same way as the LanceDB hybrid; and exact recall@k.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from benchmarks.index_bench.common import TOP_K, Fuse
from distill.index import Embedder, fuse
from distill.index.search import HIT_COLUMNS, RRF_K, SearchHit, ranked_hits

Rows = list[dict[str, Any]]


class Baseline:
    """What a hand-rolled in-memory hybrid search costs over the same vectors and texts."""

    def __init__(
        self, columns: dict[str, list[Any]], vectors: np.ndarray, embedder: Embedder, fusion: Fuse
    ) -> None:
        import bm25s

        self.columns = columns
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self.fusion = fusion
        self._bm25s = bm25s
        tokens = bm25s.tokenize(columns["text"], stopwords="en", show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.vocab = self.bm25.vocab_dict

    def with_embedder(self, embedder: Embedder) -> Baseline:
        """The same index, embedding queries with ``embedder``."""
        other = copy.copy(self)
        other.embedder = embedder
        return other

    def _row(self, i: int, score: float) -> dict[str, Any]:
        row = {name: values[i] for name, values in self.columns.items()}
        row["_raw_score"] = score
        return row

    def exact(self, vector: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ vector
        limit = min(limit, len(scores))
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.lexsort((top, -scores[top]))]
        return top, scores[top]

    def vector(self, query: str, limit: int) -> Rows:
        vector = self.embedder.embed([query])[0]
        top, scores = self.exact(vector, limit)
        return [self._row(int(i), float(s)) for i, s in zip(top, scores, strict=True)]

    def fts(self, query: str, limit: int) -> Rows:
        tokens = self._bm25s.tokenize(
            [query], stopwords="en", show_progress=False, return_ids=False
        )
        known = [[t for t in tokens[0] if t in self.vocab]]
        if not known[0]:
            return []
        docs, scores = self.bm25.retrieve(
            known, k=min(limit, len(self.vectors)), show_progress=False, n_threads=0
        )
        return [
            self._row(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]

    def search(self, query: str, mode: str = "hybrid", top_k: int = TOP_K) -> list[SearchHit]:
        pool = max(100, top_k * 4)  # as Retriever.search
        if mode == "vector":
            return ranked_hits(self.vector(query, top_k), "vector")[:top_k]
        if mode == "fts":
            return ranked_hits(self.fts(query, top_k), "fts")[:top_k]
        hybrid = fuse(
            self.vector(query, pool), self.fts(query, pool), k=RRF_K, **self.fusion.kwargs()
        )
        return hybrid[:top_k]


def table_columns(table: Any, names: list[str]) -> tuple[dict[str, list[Any]], np.ndarray]:
    """``names`` of every row of a LanceDB table, and its vectors as one float32 matrix."""
    arrow = table.to_arrow()
    columns = {name: arrow.column(name).to_pylist() for name in names}
    vector = arrow.column("vector").combine_chunks()
    vectors = vector.flatten().to_numpy(zero_copy_only=False).reshape(-1, vector.type.list_size)
    return columns, np.ascontiguousarray(vectors, dtype=np.float32)


def hit_columns(table: Any) -> tuple[dict[str, list[Any]], np.ndarray]:
    """The columns a ``SearchHit`` is built from, and the vectors."""
    return table_columns(table, HIT_COLUMNS)


class ScoreLookup:
    """id → exact score, computed lazily (avoids a 100k-entry dict per query)."""

    def __init__(self, ids: list[str], scores: np.ndarray) -> None:
        self._ids, self._scores = ids, scores
        self._index: dict[str, int] | None = None

    def get(self, key: str, default: float = -9.0) -> float:
        if key.startswith("pb-") and key[3:].isdigit():
            i = int(key[3:])
            if i < len(self._ids) and self._ids[i] == key:
                return float(self._scores[i])
        if self._index is None:
            self._index = {value: n for n, value in enumerate(self._ids)}
        n = self._index.get(key)
        return default if n is None else float(self._scores[n])


def recall(
    got: list[str], exact_ids: list[str], exact_scores: np.ndarray, score_of: ScoreLookup, k: int
) -> tuple[float, float]:
    """(strict, tie-aware) recall@k: tie-aware counts any hit scoring ≥ the k-th exact score."""
    got = got[:k]
    strict = len(set(got) & set(exact_ids[:k])) / k
    kth = float(exact_scores[k - 1]) - 1e-6
    tied = sum(1 for i in got if score_of.get(i, -9.0) >= kth) / k
    return strict, min(1.0, tied)
