"""Vector recall@10 of the store's queries against numpy exact cosine, and an ANN knob sweep.

At ≥ ``ann_threshold`` rows the store builds an HNSW-SQ index; the sweep shows what the
query-time knobs (ef, nprobes, refine_factor) trade. The shipped row is ``Retriever.vector_rows``
with the query embedding included; the others are the bare LanceDB query selecting id + distance.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.index_bench.baseline import ScoreLookup, recall, table_columns
from benchmarks.index_bench.common import TOP_K
from distill.index import Embedder, PlaybookStore, Retriever
from distill.index.search import ANN_EF

Knob = Callable[[Any], Any]
RecallRow = tuple[float, float, float]  # strict recall@10, tie-aware recall@10, p50 ms
SWEEP: dict[str, Knob] = {
    "LanceDB defaults": lambda b: b,  # ef = 1.5 × limit
    "ef=100": lambda b: b.ef(100),
    f"ef={ANN_EF}": lambda b: b.ef(ANN_EF),
    "ef=1000": lambda b: b.ef(1000),
    "nprobes=50": lambda b: b.nprobes(50),
    "refine_factor=5": lambda b: b.refine_factor(5),
    f"ef={ANN_EF}, refine_factor=2": lambda b: b.ef(ANN_EF).refine_factor(2),
    f"ef={ANN_EF}, refine_factor=5": lambda b: b.ef(ANN_EF).refine_factor(5),
}
SHIPPED = "Retriever vector query as shipped"


@dataclass
class Exact:
    """One query's exact answer: its vector, the top ids and scores, and every row's score."""

    query: str
    vector: np.ndarray
    ids: list[str]
    top_scores: np.ndarray
    scores: np.ndarray


def exact_answers(
    queries: list[str], embedder: Embedder, vectors: np.ndarray, ids: list[str]
) -> list[Exact]:
    out = []
    for query, vector in zip(queries, embedder.embed(queries), strict=True):
        scores = vectors @ vector
        order = np.lexsort((np.arange(len(scores)), -scores))[:TOP_K]
        out.append(Exact(query, vector, [ids[i] for i in order], scores[order], scores))
    return out


def vector_ids(table: Any, exact: Exact, knob: Knob) -> list[str]:
    """The bare LanceDB vector query with ``knob`` applied, selecting id + distance only."""
    builder = table.search(exact.vector, query_type="vector").distance_type("cosine")
    rows = knob(builder).limit(TOP_K).select(["id", "_distance"]).to_list()
    return [row["id"] for row in rows]


def recall_of(run: Callable[[Exact], list[str]], answers: list[Exact], ids: list[str]) -> RecallRow:
    """Mean strict and tie-aware recall@10, and the p50 ms of ``run``, over the queries."""
    strict, tied, ms = [], [], []
    for exact in answers:
        start = time.perf_counter()
        got = run(exact)
        ms.append((time.perf_counter() - start) * 1000)
        s, t = recall(got, exact.ids, exact.top_scores, ScoreLookup(ids, exact.scores), TOP_K)
        strict.append(s)
        tied.append(t)
    return statistics.fmean(strict), statistics.fmean(tied), float(np.median(ms))


def ann_recall(
    retriever: Retriever, vectors: np.ndarray, ids: list[str], queries: list[str], ann: bool
) -> dict[str, RecallRow]:
    """recall@10 (strict, tie-aware) and p50 ms: the shipped query, then knob settings."""
    answers = exact_answers(queries, retriever.embedder, vectors, ids)

    def shipped(exact: Exact) -> list[str]:  # the query embedding included, all columns
        vector = retriever.embedder.embed([exact.query])[0]
        return [row["id"] for row in retriever.vector_rows(vector, TOP_K)]

    out = {SHIPPED: recall_of(shipped, answers, ids)}
    if ann:
        for name, knob in SWEEP.items():
            run = functools.partial(vector_ids, retriever.table, knob=knob)
            out[name] = recall_of(run, answers, ids)
    return out


def minilm_ann_recall(
    store: PlaybookStore, minilm: Embedder, queries: list[str]
) -> dict[str, RecallRow]:
    """Informative: the store's HNSW-SQ config over real MiniLM vectors (the build-rows table,
    after the measurements)."""
    from lancedb.index import HnswSq

    table: Any = store.latest_table()
    table.create_index("vector", config=HnswSq(distance_type="cosine"), replace=True)
    columns, vectors = table_columns(table, ["id"])
    answers = exact_answers(queries, minilm, vectors, columns["id"])
    names = ("LanceDB defaults", f"ef={ANN_EF}", f"ef={ANN_EF}, refine_factor=5")
    return {
        name: recall_of(
            functools.partial(vector_ids, table, knob=SWEEP[name]), answers, columns["id"]
        )
        for name in names
    }
