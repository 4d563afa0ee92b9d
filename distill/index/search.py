"""Search over the published table: vector, full-text (BM25) and hybrid fusion.

Hybrid fuses the two lists by a weighted sum of min-max-normalised scores (``fusion="weighted"``,
``alpha`` = weight of the vector side; the default, 0.4, was chosen on SciFact's train split), or
by reciprocal-rank fusion with K=60 (``fusion="rrf"``). Ranking is by that score; every hit also
carries an absolute ``relevance`` (:mod:`distill.index.relevance`), the same whatever the mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np

from distill.errors import ConfigError, DistillError
from distill.index.embedders import Embedder, embedder_for
from distill.index.relevance import TermStats, bm25_coverage, combine, content_terms
from distill.index.store import IndexManifest, PlaybookStore

Mode = Literal["hybrid", "vector", "fts"]
Fusion = Literal["rrf", "weighted"]
RRF_K = 60
# Picked on SciFact's train split (benchmarks/retrieval.py): weighted 0.4 gave nDCG@10 0.734 on
# train and 0.731 on test, against 0.713 / 0.715 for RRF.
DEFAULT_FUSION: Fusion = "weighted"
DEFAULT_ALPHA = 0.4
# HNSW search breadth once the ANN index exists: LanceDB's default gave recall@10 0.63 against
# exact cosine at 100k rows; ef=300 gave 0.90 at the same p50 (benchmarks/index.py).
ANN_EF = 300
HIT_COLUMNS = [  # what a SearchHit is built from
    "id",
    "title",
    "text",
    "category",
    "source",
    "task_id",
    "file_paths",
    "validation_steps",
    "sig_hash",
]


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    title: str
    text: str
    category: str
    source: str
    task_id: str | None
    file_paths: list[str]
    validation_steps: list[str]
    sig_hash: str
    ranks: dict[str, int] = field(default_factory=dict)
    cosine: float | None = None  # query–playbook cosine of the embedder
    bm25: float | None = None  # BM25 over the query's own best case, 0..1
    relevance: float | None = None  # the absolute signal the replay threshold applies to

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def search_payload(version: int, mode: str, hits: list[SearchHit]) -> dict[str, Any]:
    """One search as ``POST /v1/search`` answers it and ``index search --json`` prints it."""
    return {
        "index_version": version,
        "mode": mode,
        "hits": [{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, 1)],
    }


class PlaybookSearch(Protocol):
    """What replay needs of an open index: its version, its term statistics, and search.
    :class:`Retriever` is the implementation; tests stand in for it with canned hits."""

    @property
    def version(self) -> int: ...

    @property
    def terms(self) -> TermStats: ...

    def search(self, query: str, *, mode: Mode = "hybrid", top_k: int = 8) -> list[SearchHit]: ...


class Retriever:
    """A table pinned at its published version plus the embedder it was built with.

    Open once and query many times (the warm path of ``distill serve``).
    """

    def __init__(
        self,
        store: PlaybookStore,
        embedder: Embedder | None = None,
        *,
        minilm_path: str | None = None,
    ) -> None:
        self.manifest: IndexManifest = store.require_manifest()
        if self.manifest.rows == 0:
            raise DistillError(
                f"the index at {store.uri} is empty",
                hint="export accepted playbooks, then `distill index update`",
            )
        self.embedder = embedder or embedder_for(self.manifest.embedder, minilm_path)
        store.check_embedder(self.embedder, self.manifest)
        self.store = store
        self.table = store.open(self.manifest)
        self._terms: TermStats | None = None

    @property
    def terms(self) -> TermStats:
        """The published version's term statistics, read once."""
        if self._terms is None:
            self._terms = self.store.term_stats(self.table, self.manifest.version)
        return self._terms

    @property
    def version(self) -> int:
        return self.manifest.version

    def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        top_k: int = 8,
        category: str | None = None,
        source: str | None = None,
        fusion: Fusion = DEFAULT_FUSION,
        alpha: float = DEFAULT_ALPHA,
        candidates: int | None = None,
    ) -> list[SearchHit]:
        if top_k < 1:
            raise ConfigError("--top-k must be at least 1")
        if not query.strip():
            raise ConfigError("the query is empty")
        where = _where(category, source)
        pool = candidates or max(100, top_k * 4)
        query_vector = self.embedder.embed([query])[0]
        if mode == "vector":
            rows = self.vector_rows(query_vector, top_k, where)
            hits = ranked_hits(rows, "vector")[:top_k]
        elif mode == "fts":
            rows = self.text_rows(query, top_k, where)
            hits = ranked_hits(rows, "fts")[:top_k]
        else:
            rows = self.vector_rows(query_vector, pool, where)
            text = self.text_rows(query, pool, where)
            hits = fuse(rows, text, fusion=fusion, alpha=alpha)[:top_k]
            rows = rows + text
        vectors = {row["id"]: row["vector"] for row in rows}
        return [self._judged(hit, query, query_vector, vectors[hit.id]) for hit in hits]

    def _judged(self, hit: SearchHit, query: str, query_vector: Any, vector: Any) -> SearchHit:
        """``hit`` with its absolute relevance to ``query``."""
        cosine = round(float(np.dot(np.asarray(vector, dtype=np.float32), query_vector)), 4)
        bm25 = round(bm25_coverage(content_terms(query), content_terms(hit.text), self.terms), 4)
        return replace(hit, cosine=cosine, bm25=bm25, relevance=combine(cosine, bm25))

    def vector_rows(
        self, vector: Any, limit: int, where: str | None = None
    ) -> list[dict[str, Any]]:
        """The vector side of a hybrid search: the ``limit`` rows nearest to ``vector`` (an
        embedded query) by cosine, best first, each with the hit's columns, its ``vector`` and
        ``_raw_score`` (the cosine). ``where``: a filter on the rows, applied first. For
        callers that time or combine the two sides themselves (``benchmarks/index.py``)."""
        from lancedb.query import LanceVectorQueryBuilder

        query = self.table.search(vector, query_type="vector")
        if not isinstance(query, LanceVectorQueryBuilder):  # Table.search is typed for any kind
            raise TypeError(f"a vector search on {self.store.uri} gave {type(query).__name__}")
        builder = query.distance_type("cosine")
        builder = builder.ef(ANN_EF)  # ignored by an exact (brute-force) search
        if where:
            builder = builder.where(where, prefilter=True)
        rows = builder.limit(limit).select([*HIT_COLUMNS, "vector", "_distance"]).to_list()
        for row in rows:
            row["_raw_score"] = 1.0 - float(row.pop("_distance"))
        return list(rows)

    def text_rows(self, query: str, limit: int, where: str | None = None) -> list[dict[str, Any]]:
        """The full-text side of a hybrid search: the ``limit`` best BM25 matches of ``query``,
        best first, each with the hit's columns, its ``vector`` and ``_raw_score`` (BM25)."""
        from lancedb.query import MatchQuery

        # a match query: quotes in the task are text, not phrase syntax (no positions stored)
        match = MatchQuery(query, "text")  # type: ignore[call-arg]  # defaults exist at runtime
        builder = self.table.search(match, query_type="fts")
        if where:
            builder = builder.where(where, prefilter=True)
        rows = builder.limit(limit).select([*HIT_COLUMNS, "vector", "_score"]).to_list()
        for row in rows:
            row["_raw_score"] = float(row.pop("_score"))
        return list(rows)


def ranked_hits(rows: list[dict[str, Any]], mode: str) -> list[SearchHit]:
    """One side's rows (``vector_rows`` or ``text_rows``) as hits ranked 1, 2, … in ``mode``,
    scored by their ``_raw_score``."""
    return [_hit(row, row["_raw_score"], {mode: rank}) for rank, row in enumerate(rows, 1)]


def fuse(
    vector: list[dict[str, Any]],
    text: list[dict[str, Any]],
    *,
    fusion: Fusion = "rrf",
    alpha: float = 0.5,
    k: int = RRF_K,
) -> list[SearchHit]:
    """Fuse two ranked lists: RRF (sum of 1/(k+rank)) or weighted min-max scores."""
    rows: dict[str, dict[str, Any]] = {}
    ranks: dict[str, dict[str, int]] = {}
    scores: dict[str, float] = {}
    for name, hits, weight in (("vector", vector, alpha), ("fts", text, 1.0 - alpha)):
        normalised = _min_max([row["_raw_score"] for row in hits])
        for rank, (row, norm) in enumerate(zip(hits, normalised, strict=True), 1):
            rows.setdefault(row["id"], row)
            ranks.setdefault(row["id"], {})[name] = rank
            gain = 1.0 / (k + rank) if fusion == "rrf" else weight * norm
            scores[row["id"]] = scores.get(row["id"], 0.0) + gain
    order = sorted(scores, key=lambda key: (-scores[key], key))
    return [_hit(rows[key], scores[key], ranks[key]) for key in order]


def _min_max(values: list[float]) -> list[float]:
    if not values:
        return []
    low, high = min(values), max(values)
    return [1.0 if high == low else (v - low) / (high - low) for v in values]


def _hit(row: dict[str, Any], score: float, ranks: dict[str, int]) -> SearchHit:
    return SearchHit(
        id=row["id"],
        score=round(float(score), 6),
        title=row["title"],
        text=row["text"],
        category=row["category"],
        source=row["source"],
        task_id=row["task_id"] or None,
        file_paths=list(row["file_paths"] or []),
        validation_steps=list(row["validation_steps"] or []),
        sig_hash=row["sig_hash"],
        ranks=ranks,
    )


def _where(category: str | None, source: str | None) -> str | None:
    clauses = [
        f"{column} = '{value.replace(chr(39), chr(39) * 2)}'"
        for column, value in (("category", category), ("source", source))
        if value
    ]
    return " AND ".join(clauses) or None
